// Command loopproxy gives a node in its own network namespace the API server
// at the same loopback address the machine has it on: it listens on TCP
// inside the node and carries each connection over a unix socket bound in
// from the machine, where the test's end dials the API server. A unix socket
// crosses network namespaces, so the node's namespace keeps nothing but its
// own loopback and no packet can leave it.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6443", "TCP address to listen on")
	to := flag.String("to", "", "unix socket to carry connections to")
	flag.Parse()
	err := serve(*listen, *to)
	fmt.Fprintln(os.Stderr, "loopproxy:", err)
	os.Exit(1)
}

// serve carries connections until listening fails; it returns only an error.
func serve(listen, to string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go carry(c, to)
	}
}

// carry copies both ways between c and a new connection to the socket.
func carry(c net.Conn, to string) {
	defer c.Close()
	u, err := net.Dial("unix", to)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopproxy:", err)
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}

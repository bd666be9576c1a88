// Package faultproxy is an HTTPS reverse proxy between nodepatch agents and
// kube-apiserver that injects faults: it delays requests, answers with 429,
// 500 and timeouts (before a write reaches the API server, or after it was
// committed), drops watches and connections, and reports each write it
// passes on, so that a test can kill the writer right after it.
//
// Every agent gets a listener of its own on 127.0.0.1, so the proxy knows
// which node sent a request without trusting anything in it.
package faultproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// Faults are the faults injected into one node's requests; the zero value
// injects none.
type Faults struct {
	// Delay is added to every request (watches included), jittered ±50%.
	Delay time.Duration
	// ErrorRate is the share of requests answered with an injected error
	// instead of (or, for some writes, after) the API server's answer.
	ErrorRate float64
}

// Config configures a Proxy.
type Config struct {
	Upstream string // the API server, https://127.0.0.1:port
	CAFile   string // the CA that signed the API server's certificate
	// Seed seeds the proxy's own random choices (which error, which jitter).
	// Requests arrive in an order the seed does not fix, so the choices
	// reproduce only as far as the timing does.
	Seed uint64
	// OnWrite is called for every write the API server accepted (2xx),
	// before the answer goes back to the agent: killing the agent here kills
	// it right after the write, before it learns the outcome.
	OnWrite func(Write)
	// TimeoutHold is how long a request answered with an injected timeout is
	// held first; default 3s.
	TimeoutHold time.Duration
}

// Proxy is the fault-injecting proxy; Close stops it.
type Proxy struct {
	cfg      Config
	upstream *url.URL
	rt       http.RoundTripper
	cert     tls.Certificate
	certPEM  []byte

	mu      sync.Mutex
	rng     *rand.Rand
	nodes   map[string]*nodeEndpoint
	counts  map[string]int // injected faults by kind
	writes  map[string]int // writes passed on, by kind
	closeWG sync.WaitGroup
}

// nodeEndpoint is one node's listener and what is in flight on it; guarded by
// Proxy.mu.
type nodeEndpoint struct {
	url     string
	server  *http.Server
	faults  Faults
	conns   map[net.Conn]bool
	watches map[*context.CancelFunc]bool
}

// New starts nothing yet: it prepares the upstream transport and a
// self-signed serving certificate for 127.0.0.1. Call Listen per node.
func New(cfg Config) (*Proxy, error) {
	up, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("fault proxy: upstream %q: %w", cfg.Upstream, err)
	}
	if cfg.TimeoutHold <= 0 {
		cfg.TimeoutHold = 3 * time.Second
	}
	rt, err := upstreamTransport(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	cert, certPEM, err := selfSignedCert()
	if err != nil {
		return nil, err
	}
	return &Proxy{
		cfg: cfg, upstream: up, rt: rt, cert: cert, certPEM: certPEM,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		nodes: map[string]*nodeEndpoint{}, counts: map[string]int{}, writes: map[string]int{},
	}, nil
}

// upstreamTransport trusts the API server's CA and speaks HTTP/2 to it, as
// client-go would.
func upstreamTransport(caFile string) (http.RoundTripper, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("fault proxy: read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("fault proxy: no certificate in the CA file")
	}
	return &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		IdleConnTimeout:   30 * time.Second,
	}, nil
}

// Listen opens node's listener on a free port of 127.0.0.1 and returns its
// URL. Requests on it are the node's.
func (p *Proxy) Listen(node string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("fault proxy: listen for %s: %w", node, err)
	}
	ep := &nodeEndpoint{url: "https://" + l.Addr().String(), conns: map[net.Conn]bool{}, watches: map[*context.CancelFunc]bool{}}
	ep.server = &http.Server{
		Handler:           p.handler(node),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{p.cert}, MinVersion: tls.VersionTLS12},
		ConnState:         func(c net.Conn, s http.ConnState) { p.trackConn(ep, c, s) },
		// Killed agents leave half-done handshakes and streams: not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.mu.Lock()
	if _, dup := p.nodes[node]; dup {
		p.mu.Unlock()
		l.Close()
		return "", fmt.Errorf("fault proxy: %s listens already", node)
	}
	p.nodes[node] = ep
	p.mu.Unlock()
	p.closeWG.Add(1)
	go func() {
		defer p.closeWG.Done()
		_ = ep.server.ServeTLS(l, "", "") // ends with Close
	}()
	return ep.url, nil
}

func (p *Proxy) trackConn(ep *nodeEndpoint, c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		ep.conns[c] = true
	case http.StateClosed, http.StateHijacked:
		delete(ep.conns, c)
	}
}

// CertPEM is the proxy's serving certificate, to trust in a kubeconfig.
func (p *Proxy) CertPEM() []byte { return p.certPEM }

// SetFaults replaces the faults injected into node's requests.
func (p *Proxy) SetFaults(node string, f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ep := p.nodes[node]; ep != nil {
		ep.faults = f
	}
}

// ClearFaults stops injecting faults into every node's requests.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ep := range p.nodes {
		ep.faults = Faults{}
	}
}

// DropWatches ends every watch in flight for node, as a load balancer that
// cuts long requests does. It returns how many it ended.
func (p *Proxy) DropWatches(node string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ep := p.nodes[node]
	if ep == nil {
		return 0
	}
	for cancel := range ep.watches {
		(*cancel)()
	}
	n := len(ep.watches)
	return n
}

// DropConnections closes every connection node has open to the proxy, with
// whatever requests and watches were on them.
func (p *Proxy) DropConnections(node string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	ep := p.nodes[node]
	if ep == nil {
		return 0
	}
	for c := range ep.conns {
		_ = c.Close()
	}
	n := len(ep.conns)
	return n
}

// Counts returns how many faults of each kind were injected.
func (p *Proxy) Counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneCounts(p.counts)
}

// Writes returns how many writes of each kind (Write.Kind) were passed on.
func (p *Proxy) Writes() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return cloneCounts(p.writes)
}

func cloneCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Close stops every listener and ends what is in flight.
func (p *Proxy) Close() error {
	p.mu.Lock()
	var errs []error
	for _, ep := range p.nodes {
		if err := ep.server.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.mu.Unlock()
	p.closeWG.Wait()
	return errors.Join(errs...)
}

func (p *Proxy) newReverseProxy() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(p.upstream)
			r.Out.Host = p.upstream.Host
		},
		Transport: p.rt,
		ErrorLog:  log.New(io.Discard, "", 0),
		// Watches stream: pass every event on at once.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away or the watch was dropped on purpose
			}
			writeStatus(w, http.StatusBadGateway, "ServiceUnavailable", "fault proxy: upstream: "+err.Error())
		},
	}
}

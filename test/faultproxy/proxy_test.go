package faultproxy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// upstream stands in for the API server: it echoes the method and path, and
// streams a line every 20ms to watches until the client goes.
func upstream(t *testing.T) (*httptest.Server, string) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("watch") == "true" {
			for r.Context().Err() == nil {
				_, _ = io.WriteString(w, "{}\n")
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
			return
		}
		_, _ = io.WriteString(w, r.Method+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.crt")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644))
	return srv, ca
}

func startProxy(t *testing.T, onWrite func(Write)) (*Proxy, *http.Client, string) {
	srv, ca := upstream(t)
	p, err := New(Config{Upstream: srv.URL, CAFile: ca, Seed: 1, OnWrite: onWrite, TimeoutHold: 10 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	url, err := p.Listen("node-a")
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(p.CertPEM()))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true,
	}}
	return p, client, url
}

func do(t *testing.T, client *http.Client, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestProxyPassesRequestsAndReportsWrites(t *testing.T) {
	var mu sync.Mutex
	var writes []Write
	_, client, url := startProxy(t, func(w Write) {
		mu.Lock()
		writes = append(writes, w)
		mu.Unlock()
	})
	code, body := do(t, client, http.MethodGet, url+"/api/v1/nodes/node-a")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "GET /api/v1/nodes/node-a", body)

	do(t, client, http.MethodPut, url+"/apis/coordination.k8s.io/v1/namespaces/np/leases/lock-0")
	do(t, client, http.MethodPost, url+"/api/v1/namespaces/default/pods/p/eviction")
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, writes, 2, "reads are not writes")
	require.Equal(t, "update leases", writes[0].Kind())
	require.Equal(t, Write{Node: "node-a", Verb: "update", Resource: "leases", Namespace: "np", Name: "lock-0", Status: 200}, writes[0])
	require.Equal(t, "create pods/eviction", writes[1].Kind())
}

func TestProxyInjectsErrors(t *testing.T) {
	var writes atomic.Int32
	p, client, url := startProxy(t, func(Write) { writes.Add(1) })
	p.SetFaults("node-a", Faults{ErrorRate: 1})
	codes := map[int]bool{}
	for range 40 {
		code, body := do(t, client, http.MethodPut, url+"/api/v1/nodes/node-a")
		codes[code] = true
		require.Contains(t, body, `"kind":"Status"`, "errors come as the API server's Status")
	}
	require.Equal(t, map[int]bool{429: true, 500: true, 504: true}, codes)
	counts := p.Counts()
	require.Positive(t, counts["500-after-write"])
	require.Equal(t, counts["500-after-write"]+counts["timeout-after-write"], int(writes.Load()),
		"an error after the write is reported as a write: it was committed")

	p.ClearFaults()
	code, _ := do(t, client, http.MethodGet, url+"/api/v1/nodes")
	require.Equal(t, http.StatusOK, code)
}

func TestProxyDropsWatches(t *testing.T) {
	p, client, url := startProxy(t, nil)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/api/v1/nodes?watch=true", nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	buf := make([]byte, 3)
	_, err = io.ReadFull(resp.Body, buf)
	require.NoError(t, err, "the watch streams")
	require.Eventually(t, func() bool { return p.DropWatches("node-a") == 1 }, 5*time.Second, 10*time.Millisecond)
	_, err = io.ReadAll(resp.Body)
	require.Error(t, err, "a dropped watch ends with an error, not a clean end")
}

package kube

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClassifyRequest(t *testing.T) {
	for _, tc := range []struct {
		method, url    string
		verb, resource string
	}{
		{"GET", "/api/v1/nodes/node-1", "get", "nodes"},
		{"GET", "/api/v1/nodes", "list", "nodes"},
		{"GET", "/api/v1/nodes?fieldSelector=metadata.name%3Dnode-1&watch=true", "watch", "nodes"},
		{"GET", "/api/v1/nodes?watch=1", "watch", "nodes"},
		{"PUT", "/api/v1/nodes/node-1", "update", "nodes"},
		{"PATCH", "/api/v1/nodes/node-1/status", "patch", "nodes/status"},
		{"POST", "/api/v1/namespaces/default/pods/web-0/eviction", "create", "pods/eviction"},
		{"GET", "/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3Dn", "list", "pods"},
		{"POST", "/api/v1/namespaces/nodepatch/events", "create", "events"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/nodepatch/leases/nodepatch-lock-0", "get", "leases"},
		{"GET", "/apis/coordination.k8s.io/v1/namespaces/nodepatch/leases?labelSelector=x&watch=true", "watch", "leases"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/nodepatch/leases/nodepatch-lock", "update", "leases"},
		{"DELETE", "/apis/coordination.k8s.io/v1/namespaces/nodepatch/leases/x", "delete", "leases"},
		{"DELETE", "/apis/coordination.k8s.io/v1/namespaces/nodepatch/leases", "deletecollection", "leases"},
		{"GET", "/api/v1/namespaces/nodepatch", "get", "namespaces"},
		{"GET", "/apis/policy/v1/poddisruptionbudgets", "list", "poddisruptionbudgets"},
		{"GET", "/api", "get", ""},
		{"GET", "/apis/apps/v1", "get", ""},
		{"GET", "/version", "get", ""},
		{"HEAD", "/healthz", "head", ""},
	} {
		u, err := url.Parse(tc.url)
		require.NoError(t, err)
		verb, resource := ClassifyRequest(tc.method, u)
		require.Equal(t, tc.verb+" "+tc.resource, verb+" "+resource, "%s %s", tc.method, tc.url)
	}
}

// TestCountingTransport: every request is counted once, with its answer's
// code, and one that got no answer with code 0.
func TestCountingTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusConflict)
		}
	}))
	defer srv.Close()
	var got []string
	count := func(verb, resource string, code int) {
		got = append(got, verb+" "+resource+" "+http.StatusText(code))
	}
	client := &http.Client{Transport: Counting(count)(http.DefaultTransport)}
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		req, err := http.NewRequest(method, srv.URL+"/api/v1/nodes/a", nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
	}
	srv.Close()
	_, err := client.Get(srv.URL + "/api/v1/nodes")
	require.Error(t, err)
	require.Equal(t, []string{"get nodes OK", "update nodes Conflict", "list nodes "}, got)
}

// FuzzClassifyRequest: any path and method is classified without a panic, and
// a resource never carries a query or more than one subresource.
func FuzzClassifyRequest(f *testing.F) {
	f.Add("GET", "/api/v1/namespaces/a/pods/b/eviction?watch=true")
	f.Add("PUT", "/apis/coordination.k8s.io/v1/namespaces/n/leases/l")
	f.Add("GET", "/apis//")
	f.Fuzz(func(t *testing.T, method, path string) {
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		verb, resource := ClassifyRequest(method, u)
		require.NotEmpty(t, verb+"x")
		require.NotContains(t, resource, "?")
		require.LessOrEqual(t, strings.Count(resource, "/"), 1, resource)
	})
}

package kube

import (
	"net/http"
	"net/url"
	"strings"
)

// CountFunc is told about every API request a client makes: its verb (get,
// list, watch, create, update, patch, delete, deletecollection), the resource
// it names (with its subresource: "nodes", "pods/eviction", "leases") and the
// status code of the answer (0 when none came).
type CountFunc func(verb, resource string, code int)

// countingTransport calls count once per request, after its answer.
type countingTransport struct {
	next  http.RoundTripper
	count CountFunc
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	code := 0
	if resp != nil {
		code = resp.StatusCode
	}
	verb, resource := ClassifyRequest(req.Method, req.URL)
	t.count(verb, resource, code)
	return resp, err
}

// ClassifyRequest names an API request as the API server's own metrics do: the
// verb from the method and the path (a GET of a collection is a list, with
// ?watch=true a watch), the resource from the path. A path that names no
// resource (discovery, /healthz, /version) is resource "", verb from the method.
func ClassifyRequest(method string, u *url.URL) (verb, resource string) {
	resource, named := resourceOf(u.Path)
	watch := u.Query().Get("watch")
	switch method {
	case http.MethodGet:
		switch {
		case watch == "true" || watch == "1":
			return "watch", resource
		case named || resource == "":
			return "get", resource
		}
		return "list", resource
	case http.MethodPost:
		return "create", resource
	case http.MethodPut:
		return "update", resource
	case http.MethodPatch:
		return "patch", resource
	case http.MethodDelete:
		if !named && resource != "" {
			return "deletecollection", resource
		}
		return "delete", resource
	}
	return strings.ToLower(method), resource
}

// resourceOf reads /api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUB]] and
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE[/NAME[/SUB]]. named tells a
// path to one object from one to a collection. A namespace itself
// (/api/v1/namespaces/NS) is the resource "namespaces".
func resourceOf(path string) (resource string, named bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return "", false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	switch len(parts) {
	case 0:
		if strings.Contains(path, "/namespaces/") {
			return "namespaces", true
		}
		return "", false
	case 1:
		return parts[0], false
	case 2:
		return parts[0], true
	}
	return parts[0] + "/" + parts[2], true
}

// Counting wraps a transport so that count hears of every request.
func Counting(count CountFunc) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		return countingTransport{next: next, count: count}
	}
}

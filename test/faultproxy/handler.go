package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Write is one write the API server accepted on behalf of a node's agent.
type Write struct {
	Node        string
	Verb        string // create, update, patch, delete
	Resource    string // nodes, leases, pods, events, ...
	Subresource string // eviction, status, ...
	Namespace   string
	Name        string
	Status      int
}

// Kind names the write by verb and resource, e.g. "update leases" or
// "create pods/eviction": the unit a schedule kills after.
func (w Write) Kind() string { return w.Verb + " " + w.resourcePath() }

func (w Write) resourcePath() string {
	if w.Subresource != "" {
		return w.Resource + "/" + w.Subresource
	}
	return w.Resource
}

// request is what the proxy makes of a request's method and path.
type request struct {
	Write
	failAfter string // the injected error that replaces the committed answer
}

func (r request) isWrite() bool {
	switch r.Verb {
	case "create", "update", "patch", "delete", "deletecollection":
		return true
	}
	return false
}

type requestKey struct{}

// parseRequest reads the verb, resource and name of an API request the way
// the API server does, for the paths client-go uses.
func parseRequest(node string, r *http.Request) request {
	var info request
	info.Node = node
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:] // api/v1
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:] // apis/group/version
	default:
		parts = nil // discovery, /version, /readyz
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		info.Namespace, parts = parts[1], parts[2:]
	}
	if len(parts) > 0 {
		info.Resource = parts[0]
	}
	if len(parts) > 1 {
		info.Name = parts[1]
	}
	if len(parts) > 2 {
		info.Subresource = parts[2]
	}
	info.Verb = verbOf(r, info.Name)
	return info
}

func verbOf(r *http.Request, name string) string {
	switch r.Method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		if name == "" {
			return "deletecollection"
		}
		return "delete"
	}
	if w := r.URL.Query().Get("watch"); w == "true" || w == "1" {
		return "watch"
	}
	if name == "" {
		return "list"
	}
	return "get"
}

func (p *Proxy) handler(node string) http.Handler {
	rp := p.newReverseProxy()
	rp.ModifyResponse = p.afterUpstream
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := parseRequest(node, r)
		faults := p.faultsOf(node)
		if info.Verb == "watch" {
			ctx, cancel := context.WithCancel(r.Context())
			defer p.trackWatch(node, &cancel)()
			r = r.WithContext(ctx)
		}
		if d := p.jitter(faults.Delay); d > 0 {
			p.count("delay")
			if !sleepCtx(r.Context(), d) {
				return
			}
		}
		switch kind := p.pickError(faults, info); kind {
		case "":
		case "500-after-write", "timeout-after-write":
			info.failAfter = kind
		default:
			p.answerError(w, r, kind)
			return
		}
		rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestKey{}, info)))
	})
}

// afterUpstream runs when the API server has answered, before the answer is
// passed on: it reports accepted writes, and replaces the answer when an
// error after the write was chosen.
func (p *Proxy) afterUpstream(resp *http.Response) error {
	info, ok := resp.Request.Context().Value(requestKey{}).(request)
	if !ok || !info.isWrite() {
		return nil
	}
	if resp.StatusCode/100 == 2 {
		info.Status = resp.StatusCode
		p.noteWrite(info.Write)
	}
	if info.failAfter == "" {
		return nil
	}
	p.count(info.failAfter)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	code, reason := http.StatusInternalServerError, "InternalError"
	if info.failAfter == "timeout-after-write" {
		sleepCtx(resp.Request.Context(), p.cfg.TimeoutHold)
		code, reason = http.StatusGatewayTimeout, "Timeout"
	}
	body := statusBody(code, reason, "fault proxy: injected "+info.failAfter)
	resp.StatusCode, resp.Status = code, strconv.Itoa(code)+" "+http.StatusText(code)
	resp.Header = http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(body))}}
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	return nil
}

func (p *Proxy) noteWrite(w Write) {
	p.mu.Lock()
	p.writes[w.Kind()]++
	onWrite := p.cfg.OnWrite
	p.mu.Unlock()
	if onWrite != nil {
		onWrite(w)
	}
}

// answerError answers in place of the API server.
func (p *Proxy) answerError(w http.ResponseWriter, r *http.Request, kind string) {
	p.count(kind)
	switch kind {
	case "429":
		w.Header().Set("Retry-After", "1")
		writeStatus(w, http.StatusTooManyRequests, "TooManyRequests", "fault proxy: injected 429")
	case "timeout":
		if !sleepCtx(r.Context(), p.cfg.TimeoutHold) {
			return
		}
		writeStatus(w, http.StatusGatewayTimeout, "Timeout", "fault proxy: injected timeout")
	default:
		writeStatus(w, http.StatusInternalServerError, "InternalError", "fault proxy: injected 500")
	}
}

// pickError draws whether, and which, error this request gets.
func (p *Proxy) pickError(f Faults, info request) string {
	if f.ErrorRate <= 0 {
		return ""
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= f.ErrorRate {
		return ""
	}
	kinds := []string{"429", "500", "timeout"}
	if info.isWrite() {
		kinds = append(kinds, "500-after-write", "timeout-after-write")
	}
	return kinds[p.rng.IntN(len(kinds))]
}

func (p *Proxy) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return d/2 + time.Duration(p.rng.Int64N(int64(d)))
}

func (p *Proxy) faultsOf(node string) Faults {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ep := p.nodes[node]; ep != nil {
		return ep.faults
	}
	return Faults{}
}

// trackWatch registers a watch's cancel for DropWatches and returns the
// function that forgets it.
func (p *Proxy) trackWatch(node string, cancel *context.CancelFunc) func() {
	p.mu.Lock()
	ep := p.nodes[node]
	ep.watches[cancel] = true
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(ep.watches, cancel)
		p.mu.Unlock()
		(*cancel)()
	}
}

func (p *Proxy) count(kind string) {
	p.mu.Lock()
	p.counts[kind]++
	p.mu.Unlock()
}

// writeStatus answers with a metav1.Status, as the API server does, so that
// client-go reads the code and reason.
func writeStatus(w http.ResponseWriter, code int, reason, message string) {
	body := statusBody(code, reason, message)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func statusBody(code int, reason, message string) []byte {
	body, _ := json.Marshal(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": message, "reason": reason, "code": code,
	})
	return body
}

// sleepCtx sleeps d and reports whether ctx was still alive at the end.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

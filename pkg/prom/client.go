package prom

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// DefaultTimeout bounds each request when ClientConfig.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// Flag names, as errors name them.
const (
	flagURL           = "--prometheus-url"
	flagTimeout       = "--prometheus-timeout"
	flagFilterRegexp  = "--alert-filter-regexp"
	flagLabelMatchers = "--alert-label-matchers"
	flagBlockQuery    = "--block-while-query"
	flagHealthQuery   = "--health-query"
)

// Errors a check returns, wrapped; see the package doc for what each covers.
var (
	ErrUnreachable = errors.New("prometheus unreachable")
	ErrBadQuery    = errors.New("prometheus rejected the query")
	ErrBadResponse = errors.New("unexpected answer from prometheus")
)

// IsUnreachable reports whether err says Prometheus could not be asked (as
// opposed to a bad query or a strange answer).
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// ClientConfig is how to reach one Prometheus.
type ClientConfig struct {
	// URL is the server's base URL (--prometheus-url), e.g.
	// http://prometheus.monitoring:9090 or https://host/prometheus.
	URL string
	// Timeout bounds each request (--prometheus-timeout); zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Transport, when set, carries the requests (custom TLS, a proxy); nil
	// uses a transport of this client's own, configured like
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// Validate checks the URL and the timeout; errors name the flag and value.
func (c ClientConfig) Validate() error {
	if _, err := parseURL(c.URL); err != nil {
		return err
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s %s: must not be negative", flagTimeout, c.Timeout)
	}
	return nil
}

func (c ClientConfig) timeout() time.Duration {
	if c.Timeout == 0 {
		return DefaultTimeout
	}
	return c.Timeout
}

// parseURL accepts an absolute http(s) URL with a host and no query or
// fragment (the API paths are appended to it). A password in it is shown
// redacted in the error.
func parseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, fmt.Errorf("%s is required: the base URL of Prometheus, e.g. http://prometheus.monitoring:9090", flagURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the value unredacted; say only what is wrong.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %q: not a URL: %v", flagURL, redactRaw(raw), err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%s %q: want an http:// or https:// URL", flagURL, u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("%s %q: no host", flagURL, u.Redacted())
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("%s %q: a query string has no place in the base URL", flagURL, u.Redacted())
	case u.Fragment != "":
		return nil, fmt.Errorf("%s %q: a fragment has no place in the base URL", flagURL, u.Redacted())
	}
	return u, nil
}

// redactRaw hides what may be a password in a value url.Parse refused:
// everything between "://" and the last "@" before the path.
func redactRaw(raw string) string {
	start := 0
	if i := strings.Index(raw, "://"); i >= 0 {
		start = i + len("://")
	}
	end := len(raw)
	if i := strings.IndexByte(raw[start:], '/'); i >= 0 {
		end = start + i
	}
	if at := strings.LastIndexByte(raw[start:end], '@'); at >= 0 {
		return raw[:start] + "xxxxx" + raw[start+at:]
	}
	return raw
}

// client is the API client every checker uses.
type client struct {
	api     v1.API
	url     string // redacted, for messages
	timeout time.Duration
}

func newClient(cfg ClientConfig) (*client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := parseURL(cfg.URL) // validated above
	transport := cfg.Transport
	if transport == nil {
		// A transport of our own rather than client_golang's shared default,
		// so that nothing else's settings or idle connections affect ours.
		transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: transport})
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flagURL, u.Redacted(), err)
	}
	return &client{api: v1.NewAPI(c), url: u.Redacted(), timeout: cfg.timeout()}, nil
}

// do runs one request under the per-request timeout and types its error.
// what says what was asked, for the message.
func (c *client) do(ctx context.Context, what string, call func(ctx context.Context) error) error {
	reqCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := call(reqCtx)
	if err == nil {
		return nil
	}
	return c.classify(ctx, reqCtx, what, err)
}

func (c *client) classify(ctx, reqCtx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		// The caller is leaving; this says nothing about Prometheus.
		return fmt.Errorf("%s at %s: %w", what, c.url, ctx.Err())
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		kind := apiErrorKind(apiErr.Type)
		if apiErr.Type == v1.ErrBadResponse && apiErr.Msg == stringResultMsg {
			// client_golang cannot decode a string result; a query that gives
			// one is the configuration's fault, not Prometheus's.
			kind = ErrBadQuery
		}
		return fmt.Errorf("%s at %s: %w: %w", what, c.url, kind, err)
	}
	if errors.Is(reqCtx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s at %s: %w: no answer within %s: %w", what, c.url, ErrUnreachable, c.timeout, err)
	}
	// What is left comes from the transport: refused, reset, DNS, TLS.
	return fmt.Errorf("%s at %s: %w: %w", what, c.url, ErrUnreachable, err)
}

// stringResultMsg is client_golang's complaint about a string result (a query
// such as "text"). The real-Prometheus test pins it: should a new version
// word it differently, the error is still an error, ErrBadResponse.
const stringResultMsg = `unexpected value type "string"`

func apiErrorKind(t v1.ErrorType) error {
	switch t {
	case v1.ErrBadData, v1.ErrExec:
		return ErrBadQuery
	case v1.ErrServer, v1.ErrTimeout, v1.ErrCanceled:
		// 5xx, including Prometheus's own query timeout (503); a cancel we
		// did not ask for is the server giving up.
		return ErrUnreachable
	default:
		// client_error (4xx other than a rejected query: a wrong path, a
		// proxy's 401), bad_response (a body that does not decode).
		return ErrBadResponse
	}
}

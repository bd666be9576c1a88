package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// StatusError is a webhook answer other than 2xx.
type StatusError struct {
	StatusCode int
	// RetryAfter is the wait the receiver asked for (Retry-After), or 0.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("webhook answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		msg += " (redirects are not followed: set --" + FlagWebhook + " to the final URL)"
	}
	return msg
}

// Temporary tells whether another attempt may succeed: 429 and 5xx say so; any
// other answer would be the same the next time.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

// webhookSink POSTs each event as JSON to one URL.
type webhookSink struct {
	sinkName string
	url      string
	shown    string // url without what may be a secret
	bodies   map[Kind]*template.Template
	texts    texts
	client   *http.Client
}

func newWebhookSink(raw string, templates []string, t texts, client *http.Client) (*webhookSink, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &FlagError{Flag: FlagWebhook, Value: redact(raw), Reason: "want an http:// or https:// URL with a host"}
	}
	bodies, err := compileBodies(templates)
	if err != nil {
		return nil, err
	}
	c := http.Client{}
	if client != nil {
		c = *client // a copy: the caller's client keeps its own redirect policy
	}
	// Following a redirect would turn the POST into a GET (301, 302) or send
	// the body to a host nobody configured; the answer is reported instead.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &webhookSink{sinkName: "webhook", url: raw, shown: redact(raw), bodies: bodies, texts: t, client: &c}, nil
}

func (s *webhookSink) name() string      { return s.sinkName }
func (s *webhookSink) wants(k Kind) bool { return s.bodies[k] != nil }
func (s *webhookSink) describe() string  { return s.shown }
func (s *webhookSink) retryable(err error) bool {
	if errors.Is(err, ErrBadBody) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Temporary()
	}
	return true // no answer at all: refused, reset, timed out
}

func (s *webhookSink) send(ctx context.Context, e Event) error {
	body, err := renderBody(s.bodies[e.Kind], bodyData{Event: e, Text: s.texts.text(e)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("POST %s: %w", s.shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	// The same key on every retry of one event: a receiver that got the first
	// attempt but whose answer was lost drops the second.
	req.Header.Set("Idempotency-Key", e.IdempotencyKey())
	req.Header.Set("User-Agent", "nodepatch")
	resp, err := s.client.Do(req)
	if err != nil {
		// url.Error's text holds the whole URL, secrets and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("POST %s: %w", s.shown, err)
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{StatusCode: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	// An hour bounds the wait whatever the receiver says (and keeps the
	// arithmetic from overflowing); the back-off cap applies on top.
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		if t.After(now.Add(maxRetryAfter)) {
			return maxRetryAfter
		}
		return t.Sub(now)
	}
	return 0
}

const maxRetryAfter = time.Hour

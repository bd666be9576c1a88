package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nicholas-fedor/shoutrrr/pkg/router"
	"github.com/nicholas-fedor/shoutrrr/pkg/types"
)

// shoutrrrSink sends kured's messages to one --notify-url.
type shoutrrrSink struct {
	sinkName string
	raw      string // for scrubbing the library's errors, never shown
	shown    string
	scheme   string
	url      *url.URL
	factory  *router.ServiceRouter // makes the service; sends nothing
	texts    texts

	// busy holds a token while a call into the service runs. The services
	// take no context, so an attempt that times out leaves its call running;
	// the next attempt waits for it rather than call the same service at
	// once (services change their own config while they send).
	busy    chan struct{}
	service types.Service // nil until set up; read and written only with busy held
}

// setUpOnline are the services whose set-up talks to their server: matrix
// logs in. They are set up at the first send, where a failure is retried like
// any other; at start only their URL is checked, so a chat server that is down
// does not keep the agent from starting.
func setUpOnline(scheme string) bool { return scheme == "matrix" }

// newShoutrrrSink checks raw and, unless its set-up is online, makes its
// service. Its own service per URL, not one router for all: each URL is
// retried and counted on its own, and a dead one does not hold the others'.
func newShoutrrrSink(raw string, t texts, timeout time.Duration) (*shoutrrrSink, error) {
	// The services take no context. The router gives every HTTP service this
	// client, whose timeout ends the call of an attempt that was given up on;
	// smtp and mqtt have timeouts of their own.
	r, err := router.NewWithOptions(nil, types.SenderOptions{HTTPClient: &http.Client{Timeout: timeout}, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("shoutrrr router: %w", err)
	}
	bad := func(err error) error {
		return &FlagError{Flag: FlagURL, Value: redactShoutrrr(raw), Reason: describeURLError(r, raw, err)}
	}
	scheme, u, err := r.ExtractServiceName(raw)
	if err != nil || scheme == "" {
		return nil, bad(router.ErrParseURLFailed)
	}
	scheme = strings.ToLower(scheme)
	if _, err := r.NewService(scheme); err != nil {
		return nil, bad(err)
	}
	s := &shoutrrrSink{sinkName: scheme, raw: raw, shown: redactShoutrrr(raw), scheme: scheme, url: u, factory: r,
		busy: make(chan struct{}, 1), texts: t}
	if setUpOnline(scheme) {
		if u.Host == "" {
			return nil, &FlagError{Flag: FlagURL, Value: s.shown, Reason: "the " + scheme + " service needs a host"}
		}
		return s, nil
	}
	if s.service, err = r.Locate(raw); err != nil {
		return nil, bad(err)
	}
	return s, nil
}

// describeURLError says what is wrong with raw, without the secrets the
// library's own messages may quote from it.
func describeURLError(r *router.ServiceRouter, raw string, err error) string {
	scheme, _, _ := r.ExtractServiceName(raw)
	switch {
	case errors.Is(err, router.ErrParseURLFailed), scheme == "":
		return "not a URL: want a shoutrrr URL such as slack://…, teams://…, matrix://…, discord://… or generic://…"
	case errors.Is(err, router.ErrUnknownService):
		services := r.ListServices()
		slices.Sort(services)
		return fmt.Sprintf("unknown service %q: want one of %s", scheme, strings.Join(services, ", "))
	case errors.Is(err, router.ErrCustomURLsNotSupported):
		return fmt.Sprintf("the %s service takes no %s+ URL", scheme, scheme)
	case errors.Is(err, router.ErrCustomURLConversion):
		return fmt.Sprintf("the %s service cannot read this %s+ URL", scheme, scheme)
	}
	// The service's own reason, "scheme: why", which may quote the URL.
	why := strings.TrimPrefix(err.Error(), scheme+": ")
	return fmt.Sprintf("the %s service refused it: %s", scheme, scrub(why, raw))
}

func (s *shoutrrrSink) name() string     { return s.sinkName }
func (s *shoutrrrSink) describe() string { return s.shown }

// wants tells the kinds kured notifies of, the only ones it has messages for.
func (s *shoutrrrSink) wants(k Kind) bool { return k == Drained || k == Rebooting || k == Back }

// retryable: the services' errors do not say whether a retry may help, so
// every failure is retried (up to MaxAttempts).
func (s *shoutrrrSink) retryable(error) bool { return true }

func (s *shoutrrrSink) send(ctx context.Context, e Event) error {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: the previous attempt is still under way: %w", s.shown, ctx.Err())
	}
	message := s.texts.text(e)
	done := make(chan error, 1) // buffered: an abandoned call still finishes
	go func() {
		defer func() { <-s.busy }()
		done <- s.call(message)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", s.shown, ctx.Err())
	}
}

// call sends message, setting the service up first if need be. Run with busy
// held.
func (s *shoutrrrSink) call(message string) (err error) {
	// A bug in a notification service must not take the agent down mid-cycle.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s: the %s service panicked: %v", s.shown, s.scheme, p)
		}
	}()
	if s.service == nil {
		svc, err := s.factory.Locate(s.raw)
		if err != nil {
			return fmt.Errorf("%s: setting up the %s service: %s", s.shown, s.scheme, scrub(err.Error(), s.raw))
		}
		s.service = svc
	}
	// No title param: a title= in the URL (the shoutrrr way to set one) would
	// lose to it, and kured sends none either.
	if err := s.service.Send(message, &types.Params{}); err != nil {
		return fmt.Errorf("%s: %s", s.shown, scrub(err.Error(), s.raw))
	}
	return nil
}

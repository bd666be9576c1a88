package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// The flags this package reads (without the leading --).
const (
	FlagURL                     = "notify-url"
	FlagMessageTemplateDrain    = "message-template-drain"
	FlagMessageTemplateReboot   = "message-template-reboot"
	FlagMessageTemplateUncordon = "message-template-uncordon"
	FlagWebhook                 = "notify-webhook"
	FlagWebhookTemplate         = "notify-webhook-template"
)

// Defaults of the delivery settings a zero Config leaves unset.
const (
	DefaultQueueSize      = 64
	DefaultMaxAttempts    = 5
	DefaultAttemptTimeout = 10 * time.Second
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 30 * time.Second
)

// Config is what New needs: the flags' values and the delivery settings.
type Config struct {
	// URLs are the --notify-url values: shoutrrr service URLs (slack://,
	// teams://, matrix://, discord://, generic://, ...), as kured takes them.
	// They get kured's messages for the drained, rebooting and back events.
	URLs []string
	// The kured message templates; empty means kured's default.
	MessageTemplateDrain    string
	MessageTemplateReboot   string
	MessageTemplateUncordon string

	// WebhookURL is --notify-webhook: every event is POSTed there as JSON.
	WebhookURL string
	// WebhookTemplates are the --notify-webhook-template values, KIND=TEMPLATE:
	// a Go text/template rendering the JSON body of that kind's events.
	WebhookTemplates []string

	// QueueSize bounds the events waiting for each sink; Notify drops (and
	// counts) what does not fit. Default DefaultQueueSize.
	QueueSize int
	// MaxAttempts bounds the deliveries of one event to one sink. Default
	// DefaultMaxAttempts.
	MaxAttempts int
	// AttemptTimeout bounds one delivery attempt. Default DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// InitialBackoff is the wait after the first failed attempt; it doubles
	// with each further one, up to MaxBackoff. Defaults DefaultInitialBackoff
	// and DefaultMaxBackoff.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration

	// HTTPClient posts to the webhook; nil is a client of its own. Redirects
	// are never followed (a POST body must not wander to another host).
	HTTPClient *http.Client
	// Observer hears every delivery, failure and drop (for the agent's
	// metrics); nil hears nothing.
	Observer Observer
	// Logger gets a line per failed delivery; nil logs nothing.
	Logger *slog.Logger
}

// BindFlags defines this package's flags on f, with kured's names and defaults.
// Both repeatable flags are string arrays: a URL or a template may hold commas.
func BindFlags(f *pflag.FlagSet, c *Config) {
	f.StringArrayVar(&c.URLs, FlagURL, nil, "shoutrrr URL to send kured's drain, reboot and uncordon messages to, e.g. slack://…, teams://…, matrix://…, discord://…, generic://… (repeatable)")
	f.StringVar(&c.MessageTemplateDrain, FlagMessageTemplateDrain, DefaultMessageTemplateDrain, "message sent to --notify-url when a node is drained; %s is the node's name")
	f.StringVar(&c.MessageTemplateReboot, FlagMessageTemplateReboot, DefaultMessageTemplateReboot, "message sent to --notify-url when a node reboots; %s is the node's name")
	f.StringVar(&c.MessageTemplateUncordon, FlagMessageTemplateUncordon, DefaultMessageTemplateUncordon, "message sent to --notify-url when a node is back and uncordoned; %s is the node's name")
	f.StringVar(&c.WebhookURL, FlagWebhook, "", "http(s) URL every reboot-cycle event is POSTed to as JSON, with an Idempotency-Key header")
	f.StringArrayVar(&c.WebhookTemplates, FlagWebhookTemplate, nil, "KIND=TEMPLATE: Go template of the JSON body for events of KIND ("+kindList()+"); fields .Kind .Node .Cycle .Reason .Time .Text, quote with json: {\"node\":{{json .Node}}} (repeatable)")
}

// FlagError is a bad flag value: the flag, the value (secrets in URLs left
// out) and why it is bad.
type FlagError struct {
	Flag   string
	Value  string
	Reason string
}

func (e *FlagError) Error() string {
	return fmt.Sprintf("--%s %q: %s", e.Flag, e.Value, e.Reason)
}

// Validate checks every value; each error names the flag and the value.
func (c Config) Validate() error {
	_, err := c.build()
	return err
}

// settings are a Config checked, with its defaults filled in.
type settings struct {
	sinks          []sink
	queueSize      int
	maxAttempts    int
	attemptTimeout time.Duration
	initialBackoff time.Duration
	maxBackoff     time.Duration
}

func (c Config) build() (settings, error) {
	var errs []error
	s := settings{
		queueSize:      orDefault(c.QueueSize, DefaultQueueSize),
		maxAttempts:    orDefault(c.MaxAttempts, DefaultMaxAttempts),
		attemptTimeout: orDefault(c.AttemptTimeout, DefaultAttemptTimeout),
		initialBackoff: orDefault(c.InitialBackoff, DefaultInitialBackoff),
		maxBackoff:     orDefault(c.MaxBackoff, DefaultMaxBackoff),
	}
	for _, f := range []struct {
		name  string
		value int64
	}{{"QueueSize", int64(c.QueueSize)}, {"MaxAttempts", int64(c.MaxAttempts)}, {"AttemptTimeout", int64(c.AttemptTimeout)},
		{"InitialBackoff", int64(c.InitialBackoff)}, {"MaxBackoff", int64(c.MaxBackoff)}} {
		if f.value < 0 {
			errs = append(errs, fmt.Errorf("notify.Config.%s %d: want 0 (the default) or more", f.name, f.value))
		}
	}
	if s.maxBackoff < s.initialBackoff {
		s.maxBackoff = s.initialBackoff
	}

	var t texts
	var err error
	if t.drain, err = parseMessageTemplate(FlagMessageTemplateDrain, c.MessageTemplateDrain, DefaultMessageTemplateDrain); err != nil {
		errs = append(errs, err)
	}
	if t.reboot, err = parseMessageTemplate(FlagMessageTemplateReboot, c.MessageTemplateReboot, DefaultMessageTemplateReboot); err != nil {
		errs = append(errs, err)
	}
	if t.uncordon, err = parseMessageTemplate(FlagMessageTemplateUncordon, c.MessageTemplateUncordon, DefaultMessageTemplateUncordon); err != nil {
		errs = append(errs, err)
	}

	names := map[string]int{}
	uniqueName := func(base string) string {
		names[base]++
		if n := names[base]; n > 1 {
			return fmt.Sprintf("%s-%d", base, n)
		}
		return base
	}
	for i, raw := range c.URLs {
		raw = unquote(raw)
		if raw == "" {
			continue // kured skips empty URLs too: a chart value left blank
		}
		sk, err := newShoutrrrSink(raw, t, s.attemptTimeout)
		if err != nil {
			// The value shown hides most of the URL: say which one it is.
			var fe *FlagError
			if errors.As(err, &fe) && len(c.URLs) > 1 {
				fe.Reason = fmt.Sprintf("(value %d of %d) %s", i+1, len(c.URLs), fe.Reason)
			}
			errs = append(errs, err)
			continue
		}
		sk.sinkName = uniqueName(sk.sinkName)
		s.sinks = append(s.sinks, sk)
	}

	if c.WebhookURL == "" && len(c.WebhookTemplates) > 0 {
		errs = append(errs, &FlagError{Flag: FlagWebhookTemplate, Value: c.WebhookTemplates[0], Reason: "given without --" + FlagWebhook})
	}
	if c.WebhookURL != "" {
		wh, err := newWebhookSink(c.WebhookURL, c.WebhookTemplates, t, c.HTTPClient)
		if err != nil {
			errs = append(errs, err)
		} else {
			wh.sinkName = uniqueName(wh.sinkName)
			s.sinks = append(s.sinks, wh)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return settings{}, err
	}
	return s, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// unquote drops one pair of quotes around s, as kured does: a URL quoted once
// too often in a chart's values still works.
func unquote(s string) string {
	if len(s) >= 2 && s[0] == s[len(s)-1] && (s[0] == '"' || s[0] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// redact is raw with what may be a secret left out: notification URLs carry
// their tokens in the user info, the path, the query and for some services
// (pushover's user key, a discord URL missing its @) the host, so errors and
// logs show the scheme, and the host only of plain web addresses.
func redact(raw string) string {
	return redactURL(raw, false)
}

// redactShoutrrr is redact for a --notify-url: only generic's host is a web
// server's name for sure.
func redactShoutrrr(raw string) string {
	return redactURL(raw, true)
}

func redactURL(raw string, service bool) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		if i := strings.Index(raw, "://"); i >= 0 {
			return raw[:i] + "://…"
		}
		return "…"
	}
	if u.Opaque != "" {
		return u.Scheme + ":…"
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "…@"
	}
	if !service || strings.HasPrefix(strings.ToLower(u.Scheme), "generic") {
		out += u.Host
	} else if u.Host != "" {
		out += "…"
	}
	if u.Path != "" || u.RawQuery != "" {
		out += "/…"
	}
	return out
}

// scrub removes raw's secret-bearing parts from msg, an error text a library
// made from the URL.
func scrub(msg, raw string) string {
	u, err := url.Parse(raw)
	parts := []string{raw}
	if err == nil {
		if u.User != nil {
			parts = append(parts, u.User.String(), u.User.Username())
			if p, ok := u.User.Password(); ok {
				parts = append(parts, p)
			}
		}
		parts = append(parts, u.RawQuery, u.Path, strings.TrimPrefix(u.Path, "/"), u.Host, u.Hostname())
		parts = append(parts, strings.Split(u.Path, "/")...)
		for _, values := range u.Query() {
			parts = append(parts, values...)
		}
	}
	for _, p := range parts {
		// Shorter pieces are hardly secrets and would mangle the text (hook
		// in webhook); a host named like its service (telegram://…@telegram)
		// is no secret either.
		if len(p) >= 8 && (err != nil || !strings.EqualFold(p, u.Scheme)) {
			msg = strings.ReplaceAll(msg, p, "…")
		}
	}
	return msg
}

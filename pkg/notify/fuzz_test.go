package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzWebhookTemplateFlag: a --notify-webhook-template value is refused with
// an error naming the flag, or split exactly at its first "=" into a known
// kind and a template; a template that compiles makes valid JSON for the
// sample event, and for any other event either valid JSON or ErrBadBody.
func FuzzWebhookTemplateFlag(f *testing.F) {
	for _, s := range []string{
		`drained={"text":{{json .Text}}}`,
		`failed={"why":"{{.Reason}}"}`,
		`back={{json .}}`,
		`loop-detected=[{{json .Node}},{{json .Time}}]`,
		`blocked-long={"a":"b=c"}`,
		`rebooting={{.Node}}`,
		`cycle-started={{if .Reason}}{"r":{{json .Reason}}}{{else}}{}{{end}}`,
		`drained={{template "x"}}`,
		`drained`, `=`, `kind=`, `Drained={}`, "back=\x00",
	} {
		f.Add(s, "node-1", "a \"reason\"\n")
	}
	f.Fuzz(func(t *testing.T, value, node, reason string) {
		// A template may loop over a number (range N); a long loop is the
		// template's author's own slowness, not what this checks.
		if len(value) > 512 || strings.Contains(value, "range") {
			return
		}
		kind, tmpl, err := ParseWebhookTemplate(value)
		if err != nil {
			var fe *FlagError
			require.True(t, errors.As(err, &fe), "%v", err)
			require.Equal(t, FlagWebhookTemplate, fe.Flag)
			require.Equal(t, value, fe.Value)
			require.True(t, strings.HasPrefix(err.Error(), "--notify-webhook-template "), err.Error())
			return
		}
		require.Equal(t, value, string(kind)+"="+tmpl)
		_, err = ParseKind(string(kind))
		require.NoError(t, err)

		bodies, err := compileBodies([]string{value})
		if err != nil {
			require.ErrorContains(t, err, "--notify-webhook-template ")
			return
		}
		require.Len(t, bodies, len(Kinds()))
		b, err := renderBody(bodies[kind], sampleEvent(kind))
		require.NoError(t, err)
		require.True(t, json.Valid(b))

		e := Event{Kind: kind, Node: node, Cycle: node + "/" + reason, Reason: reason, Time: time.Unix(int64(len(reason)), 0)}
		b, err = renderBody(bodies[kind], bodyData{Event: e, Text: reason})
		if err != nil {
			require.ErrorIs(t, err, ErrBadBody)
			return
		}
		require.True(t, json.Valid(b), "%q", b)
	})
}

// FuzzMessageTemplate: a kured message template is refused naming its flag,
// or renders exactly as kured's fmt.Sprintf(template, node) does.
func FuzzMessageTemplate(f *testing.F) {
	for _, s := range []string{"", "Draining node %s", "%s", "100%% %s", "%d", "%s %s", "50%", "%%", "%%%s%%", "%!s", "é%s"} {
		f.Add(s, "node-1")
	}
	f.Fuzz(func(t *testing.T, tmpl, node string) {
		m, err := parseMessageTemplate(FlagMessageTemplateReboot, tmpl, DefaultMessageTemplateReboot)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "--message-template-reboot "), err.Error())
			return
		}
		if tmpl == "" {
			tmpl = DefaultMessageTemplateReboot
		}
		got := m.render(node)
		if strings.Contains(strings.ReplaceAll(tmpl, "%%", ""), "%s") {
			require.Equal(t, fmt.Sprintf(tmpl, node), got)
		} else {
			// kured's Sprintf would append %!(EXTRA string=…); the text is
			// the template with %% made %.
			require.Equal(t, strings.ReplaceAll(tmpl, "%%", "%"), got)
		}
	})
}

// FuzzDefaultBody: the default body of every kind is valid JSON holding the
// event's own values, whatever bytes they are made of.
func FuzzDefaultBody(f *testing.F) {
	f.Add("node-1", "c-1", "drain timed out")
	f.Add("n", "", "quote \" backslash \\ newline \n tab \t")
	f.Add("\xff\xfe", "\x00", "</script><!--")
	bodies, err := compileBodies(nil)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, node, cycle, reason string) {
		// JSON carries valid UTF-8 only: invalid bytes arrive as U+FFFD.
		asJSON := func(s string) string {
			b, err := json.Marshal(s)
			require.NoError(t, err)
			var out string
			require.NoError(t, json.Unmarshal(b, &out))
			return out
		}
		for _, k := range Kinds() {
			e := Event{Kind: k, Node: node, Cycle: cycle, Reason: reason, Time: time.Unix(1700000000, 0).UTC()}
			text := texts{}.text(e)
			b, err := renderBody(bodies[k], bodyData{Event: e, Text: text})
			require.NoError(t, err)
			var got map[string]string
			require.NoError(t, json.Unmarshal(b, &got), "%q", b)
			require.Equal(t, map[string]string{"kind": string(k), "node": asJSON(node), "cycle": asJSON(cycle),
				"reason": asJSON(reason), "time": "2023-11-14T22:13:20Z", "text": asJSON(text)}, got)
		}
	})
}

// FuzzRetryAfter: any Retry-After header gives a wait from 0 to an hour.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"", "0", "120", "-1", "9223372036854775807", now.Add(time.Minute).Format(time.RFC1123), "Fri, 31 Dec 9999 23:59:59 GMT", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		d := retryAfter(header, now)
		require.GreaterOrEqual(t, d, time.Duration(0))
		require.LessOrEqual(t, d, time.Hour)
	})
}

// FuzzRedact: what errors and logs show of a URL never holds its password,
// its path or its query.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"slack://xoxb:tok3n@chan", "teams://g@t/alt/owner?host=h", "https://h/p?token=s3cr3t", "http://[::1", "mailto:a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		shown := redact(raw)
		u, err := parseURL(raw)
		if err != nil {
			return
		}
		for _, secret := range []string{u.password, u.path, u.query} {
			if len(secret) >= 6 && !strings.Contains(u.host, secret) && !strings.Contains(u.scheme, secret) {
				require.NotContains(t, shown, secret, "raw %q", raw)
			}
		}
	})
}

type urlParts struct{ scheme, host, password, path, query string }

func parseURL(raw string) (urlParts, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return urlParts{}, err
	}
	p := urlParts{scheme: u.Scheme, host: u.Host, path: u.Path, query: u.RawQuery}
	if u.User != nil {
		p.password, _ = u.User.Password()
	}
	return p, nil
}

package notify

import (
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"
)

func TestConfigErrorsNameTheFlagAndValue(t *testing.T) {
	const hook = "http://127.0.0.1:9/hook"
	for _, tc := range []struct {
		name   string
		config Config
		flag   string
		value  string // in the error, quoted
		reason string
	}{
		{"unknown service", Config{URLs: []string{"slakc://chan"}}, FlagURL, "slakc://…", `unknown service "slakc"`},
		{"matrix without host", Config{URLs: []string{"matrix:///room"}}, FlagURL, "matrix:///…", "needs a host"},
		{"no scheme", Config{URLs: []string{"hooks.example.com/x"}}, FlagURL, "…", "not a URL"},
		{"webhook scheme", Config{WebhookURL: "ftp://example.com/drop"}, FlagWebhook, "ftp://example.com/…", "want an http:// or https:// URL"},
		{"webhook no host", Config{WebhookURL: "http:///hook"}, FlagWebhook, "http:///…", "with a host"},
		{"webhook unparsable", Config{WebhookURL: "http://[::1"}, FlagWebhook, "http://…", "want an http"},
		{"template without webhook", Config{WebhookTemplates: []string{`back={}`}}, FlagWebhookTemplate, "back={}", "without --notify-webhook"},
		{"no =", Config{WebhookURL: hook, WebhookTemplates: []string{`drained`}}, FlagWebhookTemplate, "drained", "want KIND=TEMPLATE"},
		{"unknown kind", Config{WebhookURL: hook, WebhookTemplates: []string{`reboted={}`}}, FlagWebhookTemplate, "reboted={}", `unknown event kind "reboted"`},
		{"empty template", Config{WebhookURL: hook, WebhookTemplates: []string{`back= `}}, FlagWebhookTemplate, "back= ", "empty"},
		{"unparsable template", Config{WebhookURL: hook, WebhookTemplates: []string{`back={"n":{{json .Node}`}}, FlagWebhookTemplate,
			`back={\"n\":{{json .Node}`, "not a Go template"},
		{"unknown field", Config{WebhookURL: hook, WebhookTemplates: []string{`back={"n":{{json .Host}}}`}}, FlagWebhookTemplate,
			`back={\"n\":{{json .Host}}}`, "can't evaluate field Host"},
		{"not JSON", Config{WebhookURL: hook, WebhookTemplates: []string{`failed=node {{.Node}} failed`}}, FlagWebhookTemplate,
			"failed=node {{.Node}} failed", "sample failed event"},
		{"reason unquoted", Config{WebhookURL: hook, WebhookTemplates: []string{`failed={"why":"{{.Reason}}"}`}}, FlagWebhookTemplate,
			`failed={\"why\":\"{{.Reason}}\"}`, "not valid JSON"},
		{"second template for a kind", Config{WebhookURL: hook, WebhookTemplates: []string{`back={}`, `back=[]`}}, FlagWebhookTemplate,
			"back=[]", "a second template for back"},
		{"drain verb", Config{MessageTemplateDrain: "Draining %d"}, FlagMessageTemplateDrain, "Draining %d", "%d is not a placeholder"},
		{"reboot two names", Config{MessageTemplateReboot: "%s reboots %s"}, FlagMessageTemplateReboot, "%s reboots %s", "more than one %s"},
		{"uncordon lone %", Config{MessageTemplateUncordon: "%s is back 100%"}, FlagMessageTemplateUncordon, "%s is back 100%", "lone %"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.config.Validate()
			require.Error(t, err)
			var fe *FlagError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tc.flag, fe.Flag)
			require.Contains(t, err.Error(), "--"+tc.flag+` "`+tc.value+`"`)
			require.Contains(t, err.Error(), tc.reason)

			_, err = New(tc.config)
			require.Error(t, err, "New checks as Validate does")
		})
	}
}

func TestConfigCollectsEveryError(t *testing.T) {
	err := Config{URLs: []string{"nope://x", "zilch://y"}, MessageTemplateDrain: "%x", QueueSize: -1}.Validate()
	require.Error(t, err)
	for _, want := range []string{`"nope"`, "(value 1 of 2)", `"zilch"`, "(value 2 of 2)", "--message-template-drain", "QueueSize -1"} {
		require.Contains(t, err.Error(), want)
	}
}

func TestConfigAccepts(t *testing.T) {
	for _, c := range []Config{
		{},
		{URLs: []string{"", `""`}}, // blank chart values, as kured skips them
		{URLs: []string{"generic://127.0.0.1:9/x?disabletls=yes", "generic+https://hooks.example.com/x"}},
		{URLs: []string{"slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook"}},
		{URLs: []string{`"teams://?host=prod-00.westus.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke&title=nodepatch"`}},
		{URLs: []string{"telegram://123456:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghi@telegram?chats=@ops"}},
		{URLs: []string{"discord://token@12345"}},
		{URLs: []string{"matrix://user:password@matrix.example.com"}},
		{WebhookURL: "https://hooks.example.com/nodepatch?token=x", WebhookTemplates: []string{
			`drained={"text":{{json .Text}}}`,
			`failed={"alert":"reboot-failed","node":{{json .Node}},"why":{{json .Reason}},"at":{{json .Time}}}`,
			`loop-detected=[{{json .Node}},{{json .Cycle}}]`,
			`back={{json .Text}}`,
		}},
		{MessageTemplateDrain: "100%% drained: %s", MessageTemplateReboot: "no name at all", MessageTemplateUncordon: "%s"},
	} {
		require.NoError(t, c.Validate(), "%+v", c)
	}
}

func TestBindFlags(t *testing.T) {
	var c Config
	f := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	BindFlags(f, &c)
	require.NoError(t, f.Parse([]string{
		"--notify-url", "slack://a,b@c", "--notify-url=teams://x",
		"--notify-webhook", "https://hooks.example.com/x",
		"--notify-webhook-template", `drained={"a":1,"b":2}`,
		"--notify-webhook-template", `back={"c":3}`,
	}))
	// Commas stay inside one value: URLs and JSON templates hold them.
	require.Equal(t, []string{"slack://a,b@c", "teams://x"}, c.URLs)
	require.Equal(t, []string{`drained={"a":1,"b":2}`, `back={"c":3}`}, c.WebhookTemplates)
	require.Equal(t, "https://hooks.example.com/x", c.WebhookURL)
	// kured's defaults, word for word.
	require.Equal(t, "Draining node %s", c.MessageTemplateDrain)
	require.Equal(t, "Rebooting node %s", c.MessageTemplateReboot)
	require.Equal(t, "Node %s rebooted & uncordoned successfully!", c.MessageTemplateUncordon)
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"slack://xoxb:123-456@C001":                "slack://…@C001",
		"teams://group@tenant/altId/groupOwner":    "teams://…@tenant/…",
		"https://hooks.example.com/x?token=s3cr3t": "https://hooks.example.com/…",
		"https://hooks.example.com":                "https://hooks.example.com",
		"generic+http://127.0.0.1:9/hook":          "generic+http://127.0.0.1:9/…",
		"http://[::1":                              "http://…",
		"plain words":                              "…",
		"mailto:someone@example.com":               "mailto:…",
	} {
		require.Equal(t, want, redact(raw), raw)
	}
	for raw, want := range map[string]string{
		"pushover://shoutrrr:apiToken@userKey1234": "pushover://…@…",
		"discord://t0ken-without-its-at":           "discord://…",
		"gotify://gotify.example.com/AbCdEf":       "gotify://…/…",
		"generic://hooks.example.com/x?token=y":    "generic://hooks.example.com/…",
		"generic+https://hooks.example.com/x":      "generic+https://hooks.example.com/…",
	} {
		require.Equal(t, want, redactShoutrrr(raw), raw)
	}
}

func TestScrub(t *testing.T) {
	raw := "teams://grp@s3cr3t-tenant/s3cr3t-alt/s3cr3t-owner?host=x.example.com&key=s3cr3t-key"
	msg := scrub("bad "+raw+" (tenant s3cr3t-tenant, alt s3cr3t-alt, owner s3cr3t-owner, key=s3cr3t-key)", raw)
	require.NotContains(t, msg, "s3cr3t")
	require.Contains(t, msg, "bad … (tenant …", "the rest of the text stays")
}

func TestUnquote(t *testing.T) {
	for in, want := range map[string]string{`"a"`: "a", `'a'`: "a", `""`: "", `"a'`: `"a'`, `'`: `'`, "": "", `"x"y"`: `x"y`} {
		require.Equal(t, want, unquote(in), in)
	}
}

func TestFlagErrorIsTyped(t *testing.T) {
	err := Config{WebhookURL: "gopher://x"}.Validate()
	var fe *FlagError
	require.True(t, errors.As(err, &fe))
	require.True(t, strings.HasPrefix(fe.Error(), "--notify-webhook "))
}

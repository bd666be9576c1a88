package notify

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMessageTemplates(t *testing.T) {
	for _, tc := range []struct {
		tmpl, want string
	}{
		{"", "Draining node node-a"}, // empty: kured's default
		{"Draining node %s", "Draining node node-a"},
		{"%s", "node-a"},
		{"%s%s%%", ""}, // refused
		{"Drain of %s is 50%% done", "Drain of node-a is 50% done"},
		{"%%s is not a placeholder, %s is", "%s is not a placeholder, node-a is"},
		{"no node here", "no node here"},
		{"Draining ⚙️ %s", "Draining ⚙️ node-a"},
		{"%v", ""},
		{"50%", ""},
		{"%-10s", ""},
	} {
		m, err := parseMessageTemplate(FlagMessageTemplateDrain, tc.tmpl, DefaultMessageTemplateDrain)
		if tc.want == "" {
			require.Error(t, err, "%q", tc.tmpl)
			require.ErrorContains(t, err, "--message-template-drain")
			continue
		}
		require.NoError(t, err, "%q", tc.tmpl)
		require.Equal(t, tc.want, m.render("node-a"), "%q", tc.tmpl)
	}
}

func TestParseWebhookTemplate(t *testing.T) {
	for _, tc := range []struct {
		value, kind, tmpl string
		ok                bool
	}{
		{`drained={"a":1}`, "drained", `{"a":1}`, true},
		{`blocked-long={"x":"a=b"}`, "blocked-long", `{"x":"a=b"}`, true}, // the first = splits
		{`loop-detected=[]`, "loop-detected", `[]`, true},
		{`Drained={}`, "", "", false}, // kinds are lower case, as they are sent
		{`={}`, "", "", false},
		{`drained=`, "", "", false},
		{`drained`, "", "", false},
		{``, "", "", false},
		{` drained={}`, "", "", false},
	} {
		kind, tmpl, err := ParseWebhookTemplate(tc.value)
		if !tc.ok {
			require.Error(t, err, tc.value)
			require.ErrorContains(t, err, "--notify-webhook-template")
			continue
		}
		require.NoError(t, err, tc.value)
		require.Equal(t, Kind(tc.kind), kind)
		require.Equal(t, tc.tmpl, tmpl)
	}
}

func TestDefaultBodies(t *testing.T) {
	bodies, err := compileBodies(nil)
	require.NoError(t, err)
	tx := texts{}
	tx.drain, _ = parseMessageTemplate("", "", DefaultMessageTemplateDrain)
	tx.reboot, _ = parseMessageTemplate("", "", DefaultMessageTemplateReboot)
	tx.uncordon, _ = parseMessageTemplate("", "", DefaultMessageTemplateUncordon)
	wantText := map[Kind]string{
		CycleStarted: "Node n1 starts a reboot cycle",
		Drained:      "Draining node n1",
		Rebooting:    "Rebooting node n1",
		Back:         "Node n1 rebooted & uncordoned successfully!",
		Failed:       "Reboot cycle of node n1 failed: it said \"no\"",
		BlockedLong:  "Reboot of node n1 has been blocked for long: it said \"no\"",
		LoopDetected: "Node n1 reboots in a loop and is held: it said \"no\"",
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("CET", 3600))
	for _, k := range Kinds() {
		e := Event{Kind: k, Node: "n1", Cycle: "c1", Reason: `it said "no"`, Time: at}
		b, err := renderBody(bodies[k], bodyData{Event: e, Text: tx.text(e)})
		require.NoError(t, err)
		var got map[string]string
		require.NoError(t, json.Unmarshal(b, &got))
		require.Equal(t, map[string]string{"kind": string(k), "node": "n1", "cycle": "c1", "reason": `it said "no"`,
			"time": "2025-01-02T03:04:05.000000006+01:00", "text": wantText[k]}, got)
	}
	// No reason: no dangling colon.
	require.Equal(t, "Reboot cycle of node n1 failed", tx.text(Event{Kind: Failed, Node: "n1"}))
}

func TestCustomBodyReplacesOnlyItsKind(t *testing.T) {
	bodies, err := compileBodies([]string{`failed={"alert":{{json .Kind}},"why":{{json .Reason}}}`})
	require.NoError(t, err)
	b, err := renderBody(bodies[Failed], bodyData{Event: Event{Kind: Failed, Reason: "a\nb"}})
	require.NoError(t, err)
	require.JSONEq(t, `{"alert":"failed","why":"a\nb"}`, string(b))
	b, err = renderBody(bodies[Back], bodyData{Event: Event{Kind: Back, Node: "n"}})
	require.NoError(t, err)
	require.Contains(t, string(b), `"kind":"back"`)
}

func TestBadBodyAtRunTimeIsNotRetried(t *testing.T) {
	// A template that makes JSON for the sample but not for every event: the
	// failure is final, not retried (the same event makes the same body).
	bodies, err := compileBodies([]string{`back={{if eq .Node "node-x"}}not json{{else}}{}{{end}}`})
	require.NoError(t, err)
	_, err = renderBody(bodies[Back], bodyData{Event: Event{Kind: Back, Node: "node-x"}})
	require.ErrorIs(t, err, ErrBadBody)
	require.False(t, (&webhookSink{}).retryable(err))
}

func TestParseKind(t *testing.T) {
	for _, k := range Kinds() {
		got, err := ParseKind(string(k))
		require.NoError(t, err)
		require.Equal(t, k, got)
	}
	_, err := ParseKind("rebooted")
	require.ErrorContains(t, err, "cycle-started, drained, rebooting, back, failed, blocked-long, loop-detected")
}

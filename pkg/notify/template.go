package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"
)

// kured's message defaults, word for word, so a kured configuration moved to
// nodepatch reads the same in the chat room.
const (
	DefaultMessageTemplateDrain    = "Draining node %s"
	DefaultMessageTemplateReboot   = "Rebooting node %s"
	DefaultMessageTemplateUncordon = "Node %s rebooted & uncordoned successfully!"
)

// messageTemplate is a kured --message-template-* value: text where %s stands
// for the node's name and %% for a percent sign. kured passes it to
// fmt.Sprintf with the node's name as the only argument and has no other
// placeholder (no Go template), so that is all this accepts: anything else
// would come out as fmt's %!verb(...) noise in the chat room.
type messageTemplate struct {
	text string
}

// parseMessageTemplate checks s, the value of --flag. Empty means kured's
// default (def): kured's chart leaves the value empty to keep the default.
func parseMessageTemplate(flag, s, def string) (messageTemplate, error) {
	if s == "" {
		s = def
	}
	verbs := 0
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+1 == len(s) {
			return messageTemplate{}, &FlagError{Flag: flag, Value: s, Reason: "ends in a lone %: write %% for a percent sign"}
		}
		i++
		switch s[i] {
		case '%':
		case 's':
			verbs++
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return messageTemplate{}, &FlagError{Flag: flag, Value: s,
				Reason: fmt.Sprintf("%%%c is not a placeholder here: %%s stands for the node's name, %%%% for a percent sign", r)}
		}
	}
	if verbs > 1 {
		return messageTemplate{}, &FlagError{Flag: flag, Value: s, Reason: "has more than one %s: the node's name is the only value"}
	}
	return messageTemplate{text: s}, nil
}

// render is fmt.Sprintf(text, node) for the templates parseMessageTemplate
// accepts, except that a template without %s does not get fmt's
// %!(EXTRA string=node) tail.
func (m messageTemplate) render(node string) string {
	var b strings.Builder
	s := m.text
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) {
			i++
			if s[i] == 's' {
				b.WriteString(node)
			} else {
				b.WriteByte('%')
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// bodyData is what a --notify-webhook-template renders: the Event's fields
// (.Kind, .Node, .Cycle, .Reason, .Time) and .Text, the human sentence (kured's
// message for drained, rebooting and back).
type bodyData struct {
	Event
	Text string
}

// defaultBody is the webhook body of every kind unless a template replaces it:
// one shape for all kinds, every value quoted by json, so it is valid JSON
// whatever the node or the reason hold.
const defaultBody = `{"kind":{{json .Kind}},"node":{{json .Node}},"cycle":{{json .Cycle}},"reason":{{json .Reason}},"time":{{json .Time}},"text":{{json .Text}}}`

var bodyFuncs = template.FuncMap{
	// json quotes a value as JSON: the only safe way to put a string into a
	// JSON body (a reason may hold quotes, backslashes and newlines).
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// sampleEvent is what a template is tried on at start. Its reason holds a
// quote, a backslash and a newline, as real reasons (error messages) do, so a
// template that pastes {{.Reason}} unquoted is refused at start instead of
// failing on the first real failure.
func sampleEvent(k Kind) bodyData {
	e := Event{Kind: k, Node: "node-1.example.internal", Cycle: "0f8c2a4e-sample",
		Reason: "drain timed out: pod \"web-0\" has a PodDisruptionBudget\nC:\\tmp",
		Time:   time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	return bodyData{Event: e, Text: "Sample text for node " + e.Node}
}

// ParseWebhookTemplate splits a --notify-webhook-template value, KIND=TEMPLATE,
// and checks the kind. The template itself is checked by compileBody.
func ParseWebhookTemplate(value string) (Kind, string, error) {
	name, tmpl, ok := strings.Cut(value, "=")
	if !ok {
		return "", "", &FlagError{Flag: FlagWebhookTemplate, Value: value, Reason: "want KIND=TEMPLATE, KIND one of " + kindList()}
	}
	kind, err := ParseKind(name)
	if err != nil {
		return "", "", &FlagError{Flag: FlagWebhookTemplate, Value: value, Reason: err.Error()}
	}
	if strings.TrimSpace(tmpl) == "" {
		return "", "", &FlagError{Flag: FlagWebhookTemplate, Value: value, Reason: "the template is empty"}
	}
	return kind, tmpl, nil
}

// compileBody parses tmpl, the body template of kind (value is the whole flag
// value, for errors), and renders a sample event with it: a template that
// does not make valid JSON is refused now, not at the first event.
func compileBody(kind Kind, tmpl, value string) (*template.Template, error) {
	t, err := template.New(string(kind)).Funcs(bodyFuncs).Parse(tmpl)
	if err != nil {
		return nil, &FlagError{Flag: FlagWebhookTemplate, Value: value, Reason: "not a Go template: " + err.Error()}
	}
	if _, err := renderBody(t, sampleEvent(kind)); err != nil {
		return nil, &FlagError{Flag: FlagWebhookTemplate, Value: value,
			Reason: fmt.Sprintf("the body of a sample %s event: %v (fields: .Kind .Node .Cycle .Reason .Time .Text; quote each with json, e.g. {{json .Reason}})", kind, err)}
	}
	return t, nil
}

// compileBodies returns the body template of every kind: the defaults, with
// the --notify-webhook-template values in their place.
func compileBodies(values []string) (map[Kind]*template.Template, error) {
	bodies := make(map[Kind]*template.Template, len(Kinds()))
	given := make(map[Kind]bool)
	for _, value := range values {
		kind, tmpl, err := ParseWebhookTemplate(value)
		if err != nil {
			return nil, err
		}
		if given[kind] {
			return nil, &FlagError{Flag: FlagWebhookTemplate, Value: value, Reason: fmt.Sprintf("a second template for %s", kind)}
		}
		given[kind] = true
		t, err := compileBody(kind, tmpl, value)
		if err != nil {
			return nil, err
		}
		bodies[kind] = t
	}
	for _, kind := range Kinds() {
		if bodies[kind] == nil {
			t, err := compileBody(kind, defaultBody, string(kind)+"="+defaultBody)
			if err != nil {
				return nil, fmt.Errorf("the default body: %w", err) // a bug here, not bad input
			}
			bodies[kind] = t
		}
	}
	return bodies, nil
}

// ErrBadBody is a webhook body that is not valid JSON (or did not render). It
// is not retried: the same event makes the same body.
var ErrBadBody = errors.New("webhook body is not valid JSON")

// renderBody runs t on d and checks the result is JSON.
func renderBody(t *template.Template, d bodyData) ([]byte, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBody, err)
	}
	if !json.Valid(b.Bytes()) {
		var v any
		err := json.Unmarshal(b.Bytes(), &v)
		return nil, fmt.Errorf("%w: %v in %q", ErrBadBody, err, clip(b.String(), 200))
	}
	return b.Bytes(), nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// texts are the sentences for each kind: kured's messages where kured has one.
type texts struct {
	drain, reboot, uncordon messageTemplate
}

// text is the human sentence for e.
func (t texts) text(e Event) string {
	because := func(s string) string {
		if e.Reason == "" {
			return s
		}
		return s + ": " + e.Reason
	}
	switch e.Kind {
	case Drained:
		return t.drain.render(e.Node)
	case Rebooting:
		return t.reboot.render(e.Node)
	case Back:
		return t.uncordon.render(e.Node)
	case CycleStarted:
		return "Node " + e.Node + " starts a reboot cycle"
	case Failed:
		return because("Reboot cycle of node " + e.Node + " failed")
	case BlockedLong:
		return because("Reboot of node " + e.Node + " has been blocked for long")
	case LoopDetected:
		return because("Node " + e.Node + " reboots in a loop and is held")
	}
	return because(string(e.Kind) + " on node " + e.Node)
}

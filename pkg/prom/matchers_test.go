package prom

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// plain strips the compiled regexps, so that matchers compare by what they say.
func plain(ms []Matcher) []Matcher {
	if ms == nil {
		return nil
	}
	out := make([]Matcher, len(ms))
	for i, m := range ms {
		out[i] = Matcher{Name: m.Name, Op: m.Op, Value: m.Value}
	}
	return out
}

func TestParseMatchers(t *testing.T) {
	cases := []struct {
		in   string
		want []Matcher
	}{
		{``, nil},
		{`  `, nil},
		{`{}`, nil},
		{` { } `, nil},
		{`severity="critical"`, []Matcher{{Name: "severity", Op: MatchEqual, Value: "critical"}}},
		{`severity="critical",node=~"$NODE"`, []Matcher{
			{Name: "severity", Op: MatchEqual, Value: "critical"},
			{Name: "node", Op: MatchRegexp, Value: "$NODE"},
		}},
		{`{ a != "x" , _b!~"y|z", C9="" , }`, []Matcher{
			{Name: "a", Op: MatchNotEqual, Value: "x"},
			{Name: "_b", Op: MatchNotRegexp, Value: "y|z"},
			{Name: "C9", Op: MatchEqual, Value: ""},
		}},
		{`a="x",`, []Matcher{{Name: "a", Op: MatchEqual, Value: "x"}}},
		{"a=\"tab\\there\\\"q\\\\ \\u00e9\\x41\\101 ✓\"", []Matcher{{Name: "a", Op: MatchEqual, Value: "tab\there\"q\\ éAA ✓"}}},
		{`a="x", a!="y"`, []Matcher{{Name: "a", Op: MatchEqual, Value: "x"}, {Name: "a", Op: MatchNotEqual, Value: "y"}}},
		{"a\t=\n\"x\"", []Matcher{{Name: "a", Op: MatchEqual, Value: "x"}}},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			got, err := ParseMatchers(c.in)
			require.NoError(t, err)
			require.Equal(t, c.want, plain(got))
		})
	}
}

func TestParseMatchersErrors(t *testing.T) {
	cases := []struct {
		in     string
		column int
		reason string
	}{
		{`severity=critical`, 10, `expected a double-quoted value, found 'c'`},
		{`severity='critical'`, 10, `expected a double-quoted value, found '\''`},
		{`severity`, 9, `expected =, !=, =~ or !~ after severity, found the end`},
		{`severity=="x"`, 10, `expected a double-quoted value, found '='`},
		{`severity~="x"`, 9, `expected =, !=, =~ or !~ after severity, found '~'`},
		{`9lives="x"`, 1, `expected a label name, found '9'`},
		{`="x"`, 1, `expected a label name, found '='`},
		{`a="x",,b="y"`, 7, `expected a label name, found ','`},
		{`,a="x"`, 1, `expected a label name, found ','`},
		{`a="x" b="y"`, 7, `expected ',' or the end, found 'b'`},
		{`a="x"}`, 6, `expected ',' or the end, found '}'`},
		{`{a="x"`, 7, `expected ',' or '}', found the end`},
		{`{a="x"} b`, 9, `expected ',' or the end, found 'b'`},
		{`a="x`, 3, `the string that starts here is not closed`},
		{`a="x\"`, 3, `the string that starts here is not closed`},
		{`a="x\q"`, 5, `invalid escape sequence`},
		{`a="x\'"`, 5, `invalid escape sequence`},
		{`a="\ud800"`, 4, `invalid escape sequence`},
		{"a=\"x\ny\"", 5, `a newline in a string (write \n)`},
		{"a=\"\xff\"", 4, `invalid UTF-8`},
		{`a="\xff"`, 3, `the value is not valid UTF-8 (check its \x escapes)`},
		{`é="x"`, 1, `expected a label name, found 'é'`},
		{`ab="é",c=~"("`, 11, "bad regexp for c: error parsing regexp: missing closing ): `(`"},
		{`c=~"a)|(b"`, 4, "bad regexp for c: error parsing regexp: unexpected ): `a)|(b`"},
		{`node-name="x"`, 5, `expected =, !=, =~ or !~ after node, found '-'`},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			_, err := ParseMatchers(c.in)
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "want a *ParseError, got %v", err)
			assert.Equal(t, c.column, pe.Column(), "column of %v", err)
			assert.Equal(t, c.reason, pe.Reason)
			assert.Equal(t, c.in, pe.Input)
		})
	}
}

func TestMatcherMatches(t *testing.T) {
	labels := map[string]string{"alertname": "NodeDown", "node": "n1.example", "severity": "critical", "multi": "a\nb"}
	cases := []struct {
		matcher string
		want    bool
	}{
		{`severity="critical"`, true},
		{`severity="Critical"`, false},
		{`severity!="critical"`, false},
		{`severity!="warning"`, true},
		{`node=~"n1.*"`, true},
		{`node=~"n1"`, false}, // anchored: a prefix is not a match
		{`node=~"example"`, false},
		{`node=~".*example"`, true},
		{`node!~"n1"`, true},
		{`node=~"n1\\.example|n2"`, true},
		{`multi=~"a.b"`, true}, // "." matches a newline, as in Prometheus
		{`absent=""`, true},    // an absent label has the value ""
		{`absent!="x"`, true},
		{`absent=~".*"`, true},
		{`absent=~".+"`, false},
		{`absent="x"`, false},
	}
	for _, c := range cases {
		t.Run(c.matcher, func(t *testing.T) {
			ms, err := ParseMatchers(c.matcher)
			require.NoError(t, err)
			require.Len(t, ms, 1)
			require.Equal(t, c.want, ms[0].Matches(labels))
			// A matcher built as a literal, without its compiled regexp, agrees.
			require.Equal(t, c.want, plain(ms)[0].Matches(labels))
		})
	}
}

func TestNewMatcherErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		op    MatchOp
		value string
		err   string
	}{
		{"", MatchEqual, "x", `"" is not a label name`},
		{"a.b", MatchEqual, "x", `"a.b" is not a label name`},
		{"a", "==", "x", `unknown operator "=="`},
		{"a", MatchRegexp, "[", "bad regexp for a"},
		{"a", MatchEqual, "\xff", "not valid UTF-8"},
	} {
		_, err := NewMatcher(c.name, c.op, c.value)
		require.ErrorContains(t, err, c.err)
	}
}

func TestExpandNode(t *testing.T) {
	ms, err := ParseMatchers(`node=~"$NODE", instance="$NODE:9100", severity="critical"`)
	require.NoError(t, err)
	got, err := expandNode(ms, "n1.example")
	require.NoError(t, err)
	require.Equal(t, []Matcher{
		{Name: "node", Op: MatchRegexp, Value: `n1\.example`},
		{Name: "instance", Op: MatchEqual, Value: "n1.example:9100"},
		{Name: "severity", Op: MatchEqual, Value: "critical"},
	}, plain(got))
	// The name is a literal inside the regexp: its dot is no wildcard.
	require.True(t, got[0].Matches(map[string]string{"node": "n1.example"}))
	require.False(t, got[0].Matches(map[string]string{"node": "n1xexample"}))

	_, err = expandNode(ms, "")
	require.EqualError(t, err, `node=~"$NODE" uses $NODE but this node's name is not known`)

	// Without $NODE the node name is not needed.
	plainMs, err := ParseMatchers(`severity="critical"`)
	require.NoError(t, err)
	got, err = expandNode(plainMs, "")
	require.NoError(t, err)
	require.Equal(t, plainMs, got)
}

func TestFormatMatchers(t *testing.T) {
	ms, err := ParseMatchers("{a=\"x\\ty\", b!~\"\\\\d+\", c=\"\u00e9\\\"\"}")
	require.NoError(t, err)
	require.Equal(t, `a="x\ty", b!~"\\d+", c="é\""`, FormatMatchers(ms))
	require.Equal(t, "", FormatMatchers(nil))
}

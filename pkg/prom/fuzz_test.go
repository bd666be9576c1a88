package prom

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// FuzzParseMatchers: parsing never panics; an error is a *ParseError that
// points inside the input; what parses formats to text that parses back to
// the same matchers and formats the same again; and the flag's validation
// names the flag.
func FuzzParseMatchers(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `severity="critical",node=~"$NODE"`, `{a!="x", b!~"y|z",}`,
		`a="\t\"\\\u00e9\x41\101"`, `a="x",,`, `a=`, `a="x`, `c=~"a)|(b"`, `a="\xff"`,
		"a=\"\xff\"", `{a="x"} b`, `a  =~  "(?i)n1|n2"`, `ab="é",c=~"("`,
	} {
		f.Add(s, "n1.example")
	}
	f.Fuzz(func(t *testing.T, s, node string) {
		ms, err := ParseMatchers(s)
		if err != nil {
			var pe *ParseError
			require.True(t, errors.As(err, &pe), "not a *ParseError: %v", err)
			require.Nil(t, ms)
			require.GreaterOrEqual(t, pe.Offset, 0)
			require.LessOrEqual(t, pe.Offset, len(s))
			require.Equal(t, s, pe.Input)
			require.NotEmpty(t, pe.Reason)
			requireFlagError(t, s, node)
			return
		}
		text := FormatMatchers(ms)
		again, err := ParseMatchers(text)
		require.NoError(t, err, "%q formatted to %q, which does not parse", s, text)
		require.Equal(t, plain(ms), plain(again), "%q formatted to %q", s, text)
		require.Equal(t, text, FormatMatchers(again))
		// Braced, as in PromQL, it reads the same.
		braced, err := ParseMatchers("{" + text + "}")
		require.NoError(t, err)
		require.Equal(t, plain(ms), plain(braced))
		for _, m := range ms {
			require.True(t, validLabelName(m.Name), "name %q", m.Name)
			require.True(t, utf8.ValidString(m.Value), "value %q", m.Value)
		}
		if node != "" && validLabelName(node) {
			requireExpands(t, ms, node)
		}
		requireFlagError(t, s, node)
	})
}

// requireExpands: $NODE in = and != is replaced as text, which cannot fail;
// "$NODE" as a whole regexp matches the node's name and nothing else.
func requireExpands(t *testing.T, ms []Matcher, node string) {
	for _, m := range ms {
		got, err := expandNode([]Matcher{m}, node)
		switch m.Op {
		case MatchEqual, MatchNotEqual:
			require.NoError(t, err)
			require.Equal(t, strings.ReplaceAll(m.Value, nodeVar, node), got[0].Value)
		default:
			if m.Value == nodeVar {
				require.NoError(t, err)
				require.Equal(t, m.Op == MatchRegexp, got[0].Matches(map[string]string{m.Name: node}))
				require.Equal(t, m.Op != MatchRegexp, got[0].Matches(map[string]string{m.Name: node + "x"}))
			}
		}
	}
}

// requireFlagError: a flag value that fails validation says which flag.
func requireFlagError(t *testing.T, matchers, node string) {
	err := AlertConfig{ClientConfig: ClientConfig{URL: "http://127.0.0.1:9090"}, NodeName: node, LabelMatchers: matchers}.Validate()
	if err != nil {
		require.True(t, strings.HasPrefix(err.Error(), flagLabelMatchers+" "), "error names no flag: %v", err)
	}
}

// FuzzMatcherRoundTrip: every valid matcher survives String and
// ParseMatchers unchanged, whatever its value holds (quotes, backslashes,
// control characters, any Unicode).
func FuzzMatcherRoundTrip(f *testing.F) {
	f.Add("severity", uint8(0), "critical")
	f.Add("node", uint8(2), `n1\.example|n2`)
	f.Add("a", uint8(1), "quote\" backslash\\ tab\t nl\n nul\x00 é ✓ \u2028")
	f.Add("_x9", uint8(3), "(?s).*")
	f.Fuzz(func(t *testing.T, name string, opIndex uint8, value string) {
		ops := []MatchOp{MatchEqual, MatchNotEqual, MatchRegexp, MatchNotRegexp}
		m, err := NewMatcher(name, ops[int(opIndex)%len(ops)], value)
		if err != nil {
			return // not a valid matcher; FuzzParseMatchers covers refusals
		}
		ms, err := ParseMatchers(m.String())
		require.NoError(t, err, "%q", m.String())
		require.Equal(t, []Matcher{{Name: m.Name, Op: m.Op, Value: m.Value}}, plain(ms))
	})
}

// FuzzRegexpAnchored: a regexp matcher matches the whole value, as
// Prometheus's do: the quoted literal v matches v and nothing longer.
func FuzzRegexpAnchored(f *testing.F) {
	f.Add("n1", "0")
	f.Add("a.b", "\n")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, v, extra string) {
		if !utf8.ValidString(v) || !utf8.ValidString(extra) {
			return // label values are UTF-8
		}
		m, err := NewMatcher("l", MatchRegexp, regexp.QuoteMeta(v))
		require.NoError(t, err)
		require.True(t, m.Matches(map[string]string{"l": v}))
		if extra != "" {
			require.False(t, m.Matches(map[string]string{"l": v + extra}), "%s matched a longer value", m)
			require.False(t, m.Matches(map[string]string{"l": extra + v}), "%s matched a longer value", m)
		}
		not, err := NewMatcher("l", MatchNotRegexp, regexp.QuoteMeta(v))
		require.NoError(t, err)
		require.False(t, not.Matches(map[string]string{"l": v}))
	})
}

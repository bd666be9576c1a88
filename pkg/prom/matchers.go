package prom

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MatchOp is a label matcher's operator.
type MatchOp string

// The four PromQL matcher operators.
const (
	MatchEqual     MatchOp = "="
	MatchNotEqual  MatchOp = "!="
	MatchRegexp    MatchOp = "=~"
	MatchNotRegexp MatchOp = "!~"
)

// Matcher is one PromQL label matcher, name op "value". Make it with
// NewMatcher or ParseMatchers, which compile the regexp of =~ and !~.
type Matcher struct {
	Name  string
	Op    MatchOp
	Value string
	re    *regexp.Regexp
}

// NewMatcher checks the label name (Prometheus's classic rule:
// [a-zA-Z_][a-zA-Z0-9_]*), the operator and, for =~ and !~, the regexp.
func NewMatcher(name string, op MatchOp, value string) (Matcher, error) {
	if !validLabelName(name) {
		return Matcher{}, fmt.Errorf("%q is not a label name (letters, digits and _, not starting with a digit)", name)
	}
	if !utf8.ValidString(value) {
		return Matcher{}, fmt.Errorf("the value of %s is not valid UTF-8", name)
	}
	m := Matcher{Name: name, Op: op, Value: value}
	switch op {
	case MatchEqual, MatchNotEqual:
	case MatchRegexp, MatchNotRegexp:
		re, err := anchoredRegexp(value)
		if err != nil {
			return Matcher{}, fmt.Errorf("bad regexp for %s: %w", name, err)
		}
		m.re = re
	default:
		return Matcher{}, fmt.Errorf("unknown operator %q (want =, !=, =~ or !~)", string(op))
	}
	return m, nil
}

// anchoredRegexp compiles v as Prometheus does: the whole value must match,
// and "." matches a newline. v must parse on its own first, so that "a)|(b"
// cannot slip through the wrapping group.
func anchoredRegexp(v string) (*regexp.Regexp, error) {
	if _, err := syntax.Parse(v, syntax.Perl|syntax.DotNL); err != nil {
		return nil, err
	}
	return regexp.Compile("^(?s:" + v + ")$")
}

func validLabelName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if !labelNameByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

// Matches reports whether labels satisfy the matcher. As in PromQL, a label
// that is absent has the value "", so l!="x" and l=~".*" match without it.
func (m Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp, MatchNotRegexp:
		re := m.re
		if re == nil {
			// Built as a literal rather than by NewMatcher: compile now, and
			// let a regexp that does not compile match nothing.
			var err error
			if re, err = anchoredRegexp(m.Value); err != nil {
				return false
			}
		}
		return re.MatchString(v) == (m.Op == MatchRegexp)
	}
	return false
}

// String gives the matcher in PromQL syntax; ParseMatchers reads it back.
func (m Matcher) String() string {
	return m.Name + string(m.Op) + strconv.Quote(m.Value)
}

// FormatMatchers joins matchers as ParseMatchers reads them, without braces.
func FormatMatchers(ms []Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ", ")
}

// ParseError says where a matcher list went wrong.
type ParseError struct {
	Input  string
	Offset int // byte offset into Input
	Reason string
}

// Column is the 1-based position, in characters, of the problem.
func (e *ParseError) Column() int {
	return utf8.RuneCountInString(e.Input[:e.Offset]) + 1
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("at column %d: %s", e.Column(), e.Reason)
}

// ParseMatchers reads a comma-separated list of PromQL label matchers, as in
// severity="critical", node=~"n1|n2", optionally in braces, with a trailing
// comma allowed. Values are double-quoted with Go's (and PromQL's) escapes.
// An empty list (or "{}") gives no matchers. Errors are *ParseError.
func ParseMatchers(s string) ([]Matcher, error) {
	p := &matcherParser{s: s}
	p.skipSpace()
	braced := p.accept('{')
	var ms []Matcher
	for {
		p.skipSpace()
		if p.eof() || (braced && p.peek() == '}') {
			break
		}
		m, err := p.matcher()
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
		p.skipSpace()
		if !p.accept(',') {
			break
		}
	}
	if braced {
		if !p.accept('}') {
			return nil, p.errorf(p.pos, "expected ',' or '}', found %s", p.found())
		}
		p.skipSpace()
	}
	if !p.eof() {
		return nil, p.errorf(p.pos, "expected ',' or the end, found %s", p.found())
	}
	return ms, nil
}

type matcherParser struct {
	s   string
	pos int
}

func (p *matcherParser) eof() bool  { return p.pos >= len(p.s) }
func (p *matcherParser) peek() byte { return p.s[p.pos] }

func (p *matcherParser) accept(c byte) bool {
	if !p.eof() && p.peek() == c {
		p.pos++
		return true
	}
	return false
}

func (p *matcherParser) skipSpace() {
	for !p.eof() && strings.IndexByte(" \t\n\r", p.peek()) >= 0 {
		p.pos++
	}
}

// found describes what is at the current position, for messages.
func (p *matcherParser) found() string {
	if p.eof() {
		return "the end"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.pos:])
	return strconv.QuoteRune(r)
}

func (p *matcherParser) errorf(at int, format string, args ...any) *ParseError {
	return &ParseError{Input: p.s, Offset: at, Reason: fmt.Sprintf(format, args...)}
}

func (p *matcherParser) matcher() (Matcher, error) {
	start := p.pos
	for !p.eof() && labelNameByte(p.peek(), p.pos == start) {
		p.pos++
	}
	if p.pos == start {
		return Matcher{}, p.errorf(start, "expected a label name, found %s", p.found())
	}
	name := p.s[start:p.pos]
	p.skipSpace()
	opAt := p.pos
	var op MatchOp
	for _, candidate := range []MatchOp{MatchRegexp, MatchNotRegexp, MatchNotEqual, MatchEqual} {
		if strings.HasPrefix(p.s[p.pos:], string(candidate)) {
			op = candidate
			break
		}
	}
	if op == "" {
		return Matcher{}, p.errorf(opAt, "expected =, !=, =~ or !~ after %s, found %s", name, p.found())
	}
	p.pos += len(op)
	p.skipSpace()
	valueAt := p.pos
	value, err := p.quoted()
	if err != nil {
		return Matcher{}, err
	}
	m, err := NewMatcher(name, op, value)
	if err != nil {
		return Matcher{}, p.errorf(valueAt, "%v", err)
	}
	return m, nil
}

func labelNameByte(c byte, first bool) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
}

// quoted reads a double-quoted string, decoding escapes one at a time so that
// an error can point at the bad one.
func (p *matcherParser) quoted() (string, error) {
	open := p.pos
	if !p.accept('"') {
		return "", p.errorf(open, "expected a double-quoted value, found %s", p.found())
	}
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errorf(open, "the string that starts here is not closed")
		}
		c := p.peek()
		switch {
		case c == '"':
			p.pos++
			if v := b.String(); !utf8.ValidString(v) {
				return "", p.errorf(open, "the value is not valid UTF-8 (check its \\x escapes)")
			}
			return b.String(), nil
		case c == '\n':
			return "", p.errorf(p.pos, "a newline in a string (write \\n)")
		case c >= utf8.RuneSelf:
			if r, size := utf8.DecodeRuneInString(p.s[p.pos:]); r == utf8.RuneError && size == 1 {
				return "", p.errorf(p.pos, "invalid UTF-8")
			}
		}
		r, multibyte, tail, err := strconv.UnquoteChar(p.s[p.pos:], '"')
		if err != nil {
			return "", p.errorf(p.pos, "invalid escape sequence")
		}
		if r < utf8.RuneSelf || !multibyte {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
		p.pos = len(p.s) - len(tail)
	}
}

// expandNode replaces $NODE in every value with node: as it is for = and !=,
// and as a literal (regexp.QuoteMeta) for =~ and !~, so that a dot in a node
// name matches only a dot.
func expandNode(ms []Matcher, node string) ([]Matcher, error) {
	out := make([]Matcher, 0, len(ms))
	for _, m := range ms {
		if !strings.Contains(m.Value, nodeVar) {
			out = append(out, m)
			continue
		}
		if node == "" {
			return nil, fmt.Errorf("%s uses %s but this node's name is not known", m, nodeVar)
		}
		with := node
		if m.Op == MatchRegexp || m.Op == MatchNotRegexp {
			with = regexp.QuoteMeta(node)
		}
		expanded, err := NewMatcher(m.Name, m.Op, strings.ReplaceAll(m.Value, nodeVar, with))
		if err != nil {
			return nil, fmt.Errorf("%s with %s=%q: %w", m, nodeVar, node, err)
		}
		out = append(out, expanded)
	}
	return out, nil
}

// nodeVar in a matcher's value stands for this node's name.
const nodeVar = "$NODE"

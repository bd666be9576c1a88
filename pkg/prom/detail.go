package prom

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxListed is how many names a detail lists before "and N more": enough to
// act on, short enough for an Event's message and a status line.
const MaxListed = 5

// maxExprLen caps a query as details quote it.
const maxExprLen = 100

// ListNames sorts and de-duplicates names (leaving the caller's slice alone)
// and joins the first limit of them: "a, b, c and 2 more". A limit below 1
// counts as 1.
func ListNames(names []string, limit int) string {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	limit = max(limit, 1)
	if len(names) <= limit {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:limit], ", "), len(names)-limit)
}

// AlertsDetail is the detail of blocking alerts: "" for none, else
// "active alert A" or "active alerts A, B and 3 more".
func AlertsDetail(names []string) string {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	switch len(names) {
	case 0:
		return ""
	case 1:
		return "active alert " + names[0]
	}
	return "active alerts " + ListNames(names, MaxListed)
}

// QueryDetail is the detail of a blocking query: `query "up == 0" returned 2 series`.
func QueryDetail(expr string, series int) string {
	return fmt.Sprintf("query %s returned %d series", QuoteExpr(expr), series)
}

// QuoteExpr quotes a PromQL expression for a message, on one line and cut to
// about 100 characters.
func QuoteExpr(expr string) string {
	expr = strings.Join(strings.Fields(expr), " ")
	if utf8.RuneCountInString(expr) > maxExprLen {
		expr = string([]rune(expr)[:maxExprLen-1]) + "…"
	}
	return fmt.Sprintf("%q", expr)
}

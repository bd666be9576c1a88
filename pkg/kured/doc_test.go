package kured

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTheMigrationGuideNamesEveryFlag keeps docs/migrating-from-kured.md's flag
// table and the mapping table together: every flag has a row, and every row
// names flags of the table.
func TestTheMigrationGuideNamesEveryFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "migrating-from-kured.md"))
	require.NoError(t, err)
	_, table, ok := strings.Cut(string(doc), "| kured flag (default) | nodepatch | notes |")
	require.True(t, ok, "the guide has no flag table")
	table, _, _ = strings.Cut(table, "\n\n")

	flagName := regexp.MustCompile("`--([a-z-]+)`")
	inRows := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") {
			continue
		}
		for _, m := range flagName.FindAllStringSubmatch(cells[1], -1) {
			inRows[m[1]] = true
		}
	}
	var names []string
	for _, f := range Flags() {
		names = append(names, f.Name)
		require.True(t, inRows[f.Name], "docs/migrating-from-kured.md has no row for --%s", f.Name)
	}
	for name := range inRows {
		require.True(t, slices.Contains(names, name), "docs/migrating-from-kured.md has a row for --%s, which the table does not know", name)
	}
}

package chart_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestReadmeDocumentsEveryValue walks values.schema.json and requires the
// chart's README to name every value: a value is documented when the README
// shows its full path in backquotes, or, in a row that lists siblings, its
// parent's path followed by `.name`.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	dir := ct.ChartDir(t)
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	defs, _ := schema["definitions"].(map[string]any)
	lines := strings.Split(string(readme), "\n")

	documented := func(path string) bool {
		if strings.Contains(string(readme), "`"+path+"`") {
			return true
		}
		parent, leaf := "", path
		if i := strings.LastIndex(path, "."); i >= 0 {
			parent, leaf = path[:i], path[i+1:]
		}
		return parent != "" && slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, "`"+parent+".") && strings.Contains(l, "`."+leaf+"`")
		})
	}
	var walk func(path string, node map[string]any)
	walk = func(path string, node map[string]any) {
		if ref, ok := node["$ref"].(string); ok {
			node = defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		}
		if path != "" && documented(path) {
			return
		}
		props, ok := node["properties"].(map[string]any)
		require.True(t, ok && len(props) > 0, "value %s is not documented in the chart's README", path)
		for name, child := range props {
			if path == "" && name == "global" {
				continue
			}
			walk(strings.TrimPrefix(path+"."+name, "."), child.(map[string]any))
		}
	}
	walk("", schema)
}

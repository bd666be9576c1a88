package chart_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/metrics"
	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestRebootBlockedReasonsAreTheAgents keeps alerts.rebootBlocked.reasons'
// schema enum equal to the reasons the agent reports in
// nodepatch_reboot_blocked (metrics.BlockReasons): a reason added to the agent
// must be one an operator can alert on, and the schema must not accept a
// reason the agent never sets (its alert would never fire).
func TestRebootBlockedReasonsAreTheAgents(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(ct.ChartDir(t), "values.schema.json"))
	require.NoError(t, err)
	var schema any
	require.NoError(t, json.Unmarshal(raw, &schema))
	items := ct.Path(t, schema, "properties", "alerts", "properties", "rebootBlocked", "properties", "reasons", "items").(map[string]any)
	enum, ok := items["enum"].([]any)
	require.True(t, ok, "alerts.rebootBlocked.reasons.items has no enum: %v", items)
	var got []string
	for _, e := range enum {
		s, ok := e.(string)
		require.True(t, ok, "enum value %v is not a string", e)
		got = append(got, s)
	}
	// Equal, not ElementsMatch: the schema lists them in the agent's order, so
	// helm's "value must be one of" message reads as the metric's help does.
	require.Equal(t, metrics.BlockReasons, got, "alerts.rebootBlocked.reasons' enum in values.schema.json differs from metrics.BlockReasons")

}

// TestSchemaTakesEveryBlockReason renders the alert with every reason the
// agent has, so the enum is not only equal in the file but accepted by helm's
// schema check, and the rule's matcher names each reason.
func TestSchemaTakesEveryBlockReason(t *testing.T) {
	f := filepath.Join(t.TempDir(), "values.yaml")
	reasons, err := json.Marshal(metrics.BlockReasons)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(f, []byte("alerts:\n  enabled: true\n  rebootBlocked:\n    reasons: "+string(reasons)+"\n"), 0o600))
	out := ct.Template(t, "-f", f, "--show-only", "templates/prometheusrule.yaml")
	require.Contains(t, out, fmt.Sprintf("reason=~%q", strings.Join(metrics.BlockReasons, "|")))

	// And the enum refuses a reason the agent does not have.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("alerts:\n  rebootBlocked:\n    reasons: [maintenance]\n"), 0o600))
	_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", bad)...)
	require.Error(t, err, "the schema accepted reason maintenance")
	require.Contains(t, stderr, "/alerts/rebootBlocked/reasons/0")
}

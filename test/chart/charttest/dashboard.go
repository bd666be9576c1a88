package charttest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// DashboardFile is the chart's Grafana dashboard, relative to the chart's folder.
const DashboardFile = "dashboards/nodepatch.json"

// Dashboard is the part of a Grafana dashboard's JSON the tests read.
type Dashboard struct {
	Title         string `json:"title"`
	UID           string `json:"uid"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []DashboardVariable `json:"list"`
	} `json:"templating"`
	Panels []Panel `json:"panels"`
}

// DashboardVariable is one template variable.
type DashboardVariable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

// Panel is one panel; a row panel holds its panels while it is collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	GridPos    GridPos     `json:"gridPos"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// GridPos is a panel's place on Grafana's grid, 24 columns wide.
type GridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
	Instant    bool        `json:"instant"`
	Format     string      `json:"format"`
}

// Datasource is a panel's or a query's data source reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// LoadDashboard reads and parses the chart's dashboard, and returns it with
// the file's bytes.
func LoadDashboard(t testing.TB) (Dashboard, []byte) {
	t.Helper()
	TrackInputs(t, filepath.Join("charts", "nodepatch", "dashboards"))
	raw, err := os.ReadFile(filepath.Join(ChartDir(t), DashboardFile))
	require.NoError(t, err)
	var d Dashboard
	require.NoError(t, json.Unmarshal(raw, &d), "%s is not JSON", DashboardFile)
	return d, raw
}

// AllPanels lists every panel, those inside collapsed rows too, rows first.
func (d Dashboard) AllPanels() []Panel {
	var all []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

package policy

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRulesRoundTrip(t *testing.T) {
	r := Rules{MaxUnavailable: Quantity{Value: 10, Percent: true}, ControlPlane: ControlPlaneLast,
		PerLabel: []LabelLimit{{Key: "topology.kubernetes.io/zone", Max: 1}, {Key: "rack", Max: 2}}}
	s := r.String()
	require.Equal(t, "max-unavailable=10%;max-unavailable-per=topology.kubernetes.io/zone=1;max-unavailable-per=rack=2;control-plane=last", s)
	back, err := ParseRules(s)
	require.NoError(t, err)
	require.Equal(t, r, back)

	for bad, want := range map[string]string{
		"":                                       "want max-unavailable and control-plane",
		"max-unavailable=0;control-plane=last":   `rule "max-unavailable=0"`,
		"max-unavailable=1;control-plane=middle": `"middle" is not last, first or any`,
		"max-unavailable=1;max-unavailable=2;control-plane=any": "given twice",
		"max-unavailable=1;control-plane=any;colour=red":        `rule "colour=red": unknown rule`,
	} {
		_, err := ParseRules(bad)
		require.ErrorContains(t, err, want, bad)
	}
}

// FuzzParseRules: rules that parse render to a string that parses to them.
func FuzzParseRules(f *testing.F) {
	f.Add("max-unavailable=10%;max-unavailable-per=zone=1;control-plane=last")
	f.Add("max-unavailable=3;control-plane=any")
	f.Add(";;=")
	f.Add(`max-unavailable=2;control-plane=any;pool={"name":"gpu","selector":"nodepool=gpu","maxUnavailable":"50%","windows":["sat 02:00-06:00 UTC"]}`)
	f.Add(`max-unavailable=2;control-plane=any;pool={"name":"a","selector":"x in (a\u003bb)","maxUnavailable":1}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRules(s)
		if err != nil {
			return
		}
		again, err := ParseRules(r.String())
		require.NoError(t, err)
		require.Equal(t, r.String(), again.String())
		if len(r.Pools) == 0 {
			require.Equal(t, r, again)
		}
		for i, p := range r.Pools {
			require.Equal(t, p.Describe(), again.Pools[i].Describe())
		}
	})
}

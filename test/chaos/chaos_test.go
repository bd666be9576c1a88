package chaos

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nodepatch/nodepatch/test/harness"
)

var (
	seedFlag    = flag.Uint64("seed", 0, "run this one seed (make chaos SEED=N)")
	seedsFlag   = flag.Int("seeds", 0, "run N seeds from -from (make chaos SEEDS=N); 0 runs the make-test sample and the regressions")
	fromFlag    = flag.Uint64("from", 1, "the first seed -seeds runs")
	dryFlag     = flag.Bool("dry", false, "print each seed's world and schedule, run nothing")
	pendingFlag = flag.Bool("pending", false, "run the seeds of bugs whose fix has not landed (pendingFixSeeds)")
	keepFlag    = flag.Bool("keep", false, "keep every run's folder, not only the failed ones'")
	binFlag     = flag.String("binary", "", "run this nodepatch binary instead of building ./cmd/nodepatch (to replay a seed against a given build)")
)

// sampleSeeds are the seeds `make test` runs besides the regressions: with
// them they draw every kind of fault but an etcd restart and a pause, and seed
// 48 runs the rollout controller (two replicas, its leader killed, a limit
// change). `make chaos` runs the rest.
var sampleSeeds = []uint64{6, 8, 48}

// regressionSeeds found bugs in the agent or the harness: each failed on the
// build before the fix (replay with -binary) and passes with it. `make test`
// runs them.
var regressionSeeds = []struct {
	seed uint64
	bug  string
}{
	{4, "a need that survived the reboot rebooted the node again at once, 6 times in 10 s (issue 8, hole 1); " +
		"with --lock-ttl, the agent whose clock ran a minute ahead took a live slot: 3 nodes out of service at limit 2 (hole 3)"},
	{25, "an agent whose first write of the header Lease (the limit) got a 500 or a timeout exited instead of retrying: " +
		"in a DaemonSet, a crash loop after every control plane blip (seed 5 finds it too, with the API server away, " +
		"in 3 of 4 runs; fixed by retrying with back-off)"},
	{71, "after the limit shrank from 2 to 1, with node-3 still holding slot 1 from before, node-2 took slot 0 from a " +
		"holder that is no Node (an operator's edit) without counting node-3: two holders at limit 1 (a reclaim skipped " +
		"the holder count; TestReclaimedSlotCountsTheOtherHolders, which holds it deterministically: the replay needs the " +
		"API server's restart to last until the edit, and one replay of the old build passed)"},
	{151, "an agent that started while its Node was being registered again (deleted and re-created) exited with " +
		"\"no such Node in the cluster\": in a DaemonSet, a crash loop until the Node is back (fixed by waiting for " +
		"the Node; TestAgentWaitsForItsNode)"},
	{119, "a renewal that met a conflict failed the slot's confirmation before the reboot (TestHoldsNowRetriesAConflictingRenewal); " +
		"later, once in a loaded run, node-1 halted in Failed 40 ms after asking for its second reboot, on a view that did not " +
		"show that attempt (a halt is now written only while the API server's copy shows the attempts it was decided on: " +
		"TestStaleViewDoesNotHalt; 5 replays of the build before passed: the window is narrow)"},
	{5, "node-1 halted in Failed with no reboot request reaching its host: its attempts were recorded and then lost, to " +
		"kills right after the write and to a write committed whose answer was lost (an attempt committed without an " +
		"answer is now asked for at once: TestAttemptCommittedWithoutAnAnswerIsAsked; a halt that kills between an attempt " +
		"and its request explain is recorded as explained, not held against the agent; 5 replays of the build before passed)"},
}

// pendingFixSeeds found bugs whose fix has not landed: `make test` does not
// run them (it must stay green), `-pending` and `make chaos` do. Each moves
// to regressionSeeds with its fix.
var pendingFixSeeds = []struct {
	seed uint64
	bug  string
}{
	{11, "once, on a loaded machine: the world did not settle within 3m after the faults (node-0 needs a reboot, idle, " +
		"holds no slot; node-1 cordoned by its operator); not root-caused, and 5 replays passed"},
}

// TestChaos runs the seeds the flags name, else the sample and the
// regression seeds. A failing seed prints the command that replays it.
func TestChaos(t *testing.T) {
	seeds := sampleSeeds
	for _, r := range regressionSeeds {
		seeds = append(seeds, r.seed)
	}
	if !*pendingFlag && *seedFlag == 0 && *seedsFlag == 0 {
		for _, p := range pendingFixSeeds {
			t.Logf("not run until its fix lands (-pending runs it): seed %d: %s", p.seed, p.bug)
		}
	}
	if *pendingFlag {
		seeds = nil
		for _, p := range pendingFixSeeds {
			seeds = append(seeds, p.seed)
		}
	}
	switch {
	case *seedFlag != 0:
		seeds = []uint64{*seedFlag}
	case *seedsFlag > 0:
		seeds = nil
		for s := range *seedsFlag {
			seeds = append(seeds, *fromFlag+uint64(s))
		}
	}
	if *dryFlag {
		for _, seed := range seeds {
			fmt.Print(drawConfig(seed).describe())
		}
		return
	}
	env := Env{BinDir: harness.EnsureToolsT(t), Binary: *binFlag, KeepDir: *keepFlag}
	if env.Binary == "" {
		env.Binary = harness.BuildNodepatchT(t)
	}
	var totals Totals
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			res, err := Run(t.Context(), env, seed)
			totals.Add(res, err != nil)
			report(t, res, err)
		})
	}
	// The line to quote, on stdout so that `make chaos` shows it as is.
	fmt.Fprintln(os.Stdout, totals.Summary())
	fmt.Fprintln(os.Stdout, totals.Breakdown())
}

func report(t *testing.T, res Result, err error) {
	t.Helper()
	t.Log(res.Line())
	for _, h := range res.Halts {
		t.Logf("halted: %s", h)
	}
	if err == nil && len(res.Violations) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", res.Schedule)
	if err != nil {
		fmt.Fprintf(&b, "the harness failed: %v\n", err)
	}
	for _, v := range res.Violations {
		fmt.Fprintf(&b, "VIOLATION %s\n", v)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if res.Dir != "" {
		fmt.Fprintf(&b, "logs kept in %s (chaos.log, hosts/<node>/agent.log, controllers/<replica>.log, cp/)\n", res.Dir)
	}
	fmt.Fprintf(&b, "replay: %s", ReplayCommand(res.Seed))
	t.Error(b.String())
}

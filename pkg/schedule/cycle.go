package schedule

import "time"

// cycleHistory is how many past cycles ExpectedCycle weighs: enough that the
// longest of them is a high percentile of what the node does, few enough that
// one freak cycle stops counting after a while.
const cycleHistory = 10

// ExpectedCycle estimates how long the next patch-and-reboot cycle takes from
// the durations of past ones, oldest first: the longest of the last ten. The
// longest, not a mean or median, because the failure operators fear is a
// cycle that overruns its window and reboots a node when it must not; a
// cycle estimated too long only waits for a later window. Durations that are
// not positive are bad records and ignored; without any, it is fallback.
func ExpectedCycle(past []time.Duration, fallback time.Duration) time.Duration {
	if len(past) > cycleHistory {
		past = past[len(past)-cycleHistory:]
	}
	var longest time.Duration
	for _, d := range past {
		longest = max(longest, d)
	}
	if longest <= 0 {
		return fallback
	}
	return longest
}

package chaos

import (
	"strings"
	"testing"
)

// TestSeedsFoundBeforeTheControllerKeepTheirWorld: the seeds chaos_test.go
// lists were found in agents-only runs; the controller's own stream must
// leave them agents-only, or their replays would no longer be the runs that
// found their bugs.
func TestSeedsFoundBeforeTheControllerKeepTheirWorld(t *testing.T) {
	for _, seed := range []uint64{4, 5, 6, 8, 11, 25, 71, 119, 151} {
		if c := drawConfig(seed); c.controller != nil {
			t.Errorf("seed %d draws controller mode: %s", seed, c.describe())
		}
	}
}

// TestScheduleOfSeed8 holds one seed's schedule as it was drawn before
// controller mode: a change to the order or the number of the draws breaks
// every replay, and shows here first.
func TestScheduleOfSeed8(t *testing.T) {
	want := strings.TrimLeft(`
seed 8: 4 nodes, limit 1, reboots of 710ms, lock TTL 30s, clock of node-3 off by 3m0s, operator cordoned [node-2], reboot needed on [node-0 node-1 node-2 node-3], faults over 23s:
  +  2.3s limit-change      to 1 (header)
  +  4.8s kill              node-3 for 400ms
  +  8.9s drop-watches      node-1
  + 10.1s kill-after-write  after write 3 of "create pods/eviction" for 1.8s
  + 11.0s block             node-2 for 3.2s
  + 11.8s lease-delete     
  + 12.2s limit-change      to 2 (restart)
  + 12.5s drop-watches      node-0
  + 13.0s kill-after-write  after write 1 of "create leases" for 800ms
  + 14.8s kill-after-write  after write 3 of "create leases" for 1.3s
  + 16.0s kill              node-0 for 600ms
  + 19.0s persistent-need   node-1 for 10s
  + 20.8s lease-edit        (annotate)
`, "\n")
	if got := drawConfig(8).describe(); got != want {
		t.Errorf("seed 8's schedule changed:\n%s\nwant:\n%s", got, want)
	}
}

// TestControllerModeSeeds: about half the seeds run the controller, each
// with its leader killed at least once, and its faults merged into the
// schedule in time order.
func TestControllerModeSeeds(t *testing.T) {
	n := 0
	for seed := uint64(1); seed <= 200; seed++ {
		c := drawConfig(seed)
		if c.controller == nil {
			continue
		}
		n++
		kills := 0
		for i, e := range c.events {
			if e.kind == faultKillController {
				kills++
			}
			if i > 0 && e.at < c.events[i-1].at {
				t.Errorf("seed %d: fault %d (%s) before the one ahead of it", seed, i, e)
			}
		}
		if kills == 0 {
			t.Errorf("seed %d runs the controller without killing its leader", seed)
		}
	}
	if n < 80 || n > 120 {
		t.Errorf("%d of 200 seeds run the controller; want about half", n)
	}
}

package model

import "testing"

// Regression scenarios the search found with two faults on two nodes
// (TestTwoFaults). Each makes the moves up to its faults and then explores
// every continuation without further faults.

func step(i int) move { return move{kind: "step", i: i} }

func twoNodes(t *testing.T) config {
	cfg := baseConfig(t, 1, 0)
	cfg.nodes, cfg.cordoned = 2, 1
	return cfg
}

// TestRebootRequestErrorThatRebooted: the host takes the reboot request but
// the agent gets an error back (a D-Bus call cut off as the host goes down,
// a command killed by the shutdown), and the operator then blocks the node.
// The agent takes the request as refused, sees the block, aborts the cycle:
// it uncordons and gives its slot back while the host is going down, so the
// host reboots without the lock, and with its node open to pods again.
func TestRebootRequestErrorThatRebooted(t *testing.T) {
	run(t, twoNodes(t), check(twoNodes(t),
		step(0), step(0), step(0), // take the slot, taint and cordon, drain
		move{kind: "step", i: 0, plan: plan{failOn: "reboot", failAfter: true}},
		move{kind: "block", i: 0},
	))
}

// TestBeginCycleKeepsItsOwnCordon: the write that starts the cycle (taint,
// cordon, cordoned-by-nodepatch=true) is committed but its answer is lost, and
// the operator removes the phase before the agent's cache shows the write.
// The agent starts the cycle again; its update reads the node as already
// cordoned and records the cordon as the operator's (cordoned-by-nodepatch
// false), so the cycle never lifts it: the node stays cordoned for good.
func TestBeginCycleKeepsItsOwnCordon(t *testing.T) {
	run(t, twoNodes(t), check(twoNodes(t),
		step(0), // take the slot
		move{kind: "step", i: 0, plan: plan{failOn: "node", failAfter: true}},
		move{kind: "reset", i: 0},
	))
}

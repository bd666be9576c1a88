package agent

import "testing"

// BenchmarkDecide: the decision runs on every watch event of the node and the lock.
func BenchmarkDecide(b *testing.B) {
	o := obs(rebooting)
	o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
	for b.Loop() {
		if Decide(o).Action != ActFinish {
			b.Fatal("unexpected decision")
		}
	}
}

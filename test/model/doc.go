// Package model is the exhaustive interleaving check of nodepatch (issue 8): a
// model checker, written as Go tests, that runs the real agent, lock and node
// code of several nodes over an in-memory API server with resourceVersion
// semantics and lagging caches, explores every interleaving of their steps and
// of a few faults within small bounds, and checks the safety invariants in every
// reachable state. The tests are in the _test.go files; see check_test.go.
//
// The rollout controller is modelled too (controller_test.go): with agents
// that wait for admission, each controller is one more actor whose move is a
// round of the controller's own code (controller.Rollout: Decide over its own
// lagging cache of every Node and the lock's header, then the writes it makes),
// with controller crashes (its memory lost) and two controllers that both
// believe they lead.
package model

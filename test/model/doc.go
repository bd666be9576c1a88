// Package model is the exhaustive interleaving check of nodepatch (issue 8): a
// model checker, written as Go tests, that runs the real agent, lock and node
// code of several nodes over an in-memory API server with resourceVersion
// semantics and lagging caches, explores every interleaving of their steps and
// of a few faults within small bounds, and checks the safety invariants in every
// reachable state. The tests are in the _test.go files; see check_test.go.
package model

package model

import (
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// config is one bound of the search.
type config struct {
	nodes, limit int
	cordoned     int           // the node the operator cordoned before the rollout; -1: none
	faults       int           // faults per path
	midTicks     int           // ticks taken while something is still in flight
	horizon      time.Duration // the clock never passes t0+horizon
	ttl          time.Duration // the lock's TTL; 0 never takes a live node's slot
	// controllers are the rollout controllers that believe they lead; with
	// any, the agents run with admission "controller" (see controller_test.go).
	controllers int
	// kinds are the faults that may strike (each costs one of the budget):
	//   crash     the agent process dies between steps or right after any
	//             effect (API write, reboot request) of a step, and restarts
	//   lose      a reboot request does nothing
	//   sticky    a reboot leaves the host asking for another (a reboot loop)
	//   drain     a drain fails (a PodDisruptionBudget allows no eviction)
	//   bump      another client writes a Lease between the agent's read and
	//             its write of it (a 409)
	//   block     the operator sets the block annotation, between steps or
	//             right before any read of the Node in a step
	//   reset     the operator removes the phase annotation, likewise (of a
	//             Draining or Failed node)
	//   edit      the operator removes the recorded boot id, between steps
	//   race      another agent's whole step runs right before any effect of
	//             a step (between its reads and its write)
	//   fail      the API server (or the host, for a reboot request) answers
	//             an effect with an error, before or after carrying it out
	//   conflict  the operator's block lands between the agent's read and its
	//             write of its Node instead (a 409; see plan)
	//   ctlcrash  a controller process dies between rounds or right after any
	//             of its writes; a new one starts with nothing remembered, from
	//             the cache the old one had
	kinds    map[string]bool
	maxDepth int // moves per path, a safety net: a path cut here is counted
}

func (c config) String() string {
	s := fmt.Sprintf("%d nodes, limit %d, %d faults of %v, %d mid-flight ticks, TTL %s, horizon %s",
		c.nodes, c.limit, c.faults, sortedKeys(c.kinds), c.midTicks, c.ttl, c.horizon)
	if c.controllers > 0 {
		s += fmt.Sprintf(", %d controllers", c.controllers)
	}
	return s
}

// result is what a search found.
type result struct {
	states      int // distinct states reached (a state reached again with fewer faults spent is explored again, not counted)
	transitions int // moves made (each from a restored state)
	ends        int // settled states at the time bound, where the end invariants were checked
	cut         int // paths cut at maxDepth
	maxDepth    int
	elapsed     time.Duration
	// violations maps each broken invariant to the shortest path found to it.
	violations map[string][]string
}

func (r *result) String() string {
	return fmt.Sprintf("%d states, %d transitions, %d end states checked, %d paths cut, deepest path %d moves, %s",
		r.states, r.transitions, r.ends, r.cut, r.maxDepth, r.elapsed.Round(time.Millisecond))
}

// report lists each violation with its path, for a failure message.
func report(found map[string][]string) string {
	var b strings.Builder
	for _, name := range sortedKeys(found) {
		fmt.Fprintf(&b, "\n%s\n  path:\n    %s\n", name, strings.Join(found[name], "\n    "))
	}
	return b.String()
}

// checker is a depth-first search over the states of the model (from the
// state a prefix of moves reaches, for regression scenarios), each state
// visited once (by its hash), or again if it is reached with fewer faults
// spent: the faults spent are not in the key, since a state with more of the
// budget left can do all that one with less can. A move is always made from a
// restored snapshot of its state, so the search needs no undo.
type checker struct {
	m    *model
	seen map[key]int // the fewest faults spent on the way to each state
	path []string
	res  *result
}

func check(cfg config, prefix ...move) *result {
	start := time.Now()
	// The search makes short-lived copies by the million and keeps few: less
	// frequent collections trade some memory for time.
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	m := newModel(cfg)
	c := &checker{m: m, seen: map[key]int{}, res: &result{violations: map[string][]string{}}}
	if len(m.bad) > 0 {
		c.record(c.res.violations, move{kind: "start"}, m.bad)
		return c.res
	}
	for _, mv := range prefix {
		m.apply(mv)
		c.path = append(c.path, mv.String())
		if len(m.bad) > 0 {
			c.record(c.res.violations, move{kind: "end"}, m.bad)
			c.res.elapsed = time.Since(start)
			return c.res
		}
	}
	s := m.capture(m.hash())
	c.seen[s.key] = m.w.faults
	c.res.states = 1
	c.explore(s, 0)
	c.res.elapsed = time.Since(start)
	return c.res
}

// explore makes every move from state s, then the tick or the end check.
func (c *checker) explore(s *snapshot, depth int) {
	m := c.m
	c.res.maxDepth = max(c.res.maxDepth, depth)
	if depth >= m.cfg.maxDepth {
		c.res.cut++
		return
	}
	base := m.baseMoves()
	var faults []move
	if s.w.faults < m.cfg.faults {
		faults = m.faultMoves()
	}
	settled := true
	rounds := c.newRounds(s)
	for _, mv := range base {
		m.restore(s)
		ctl := m.apply(mv)
		if mv.kind == "control" && rounds.redundant(m, mv, ctl, settled) {
			continue
		}
		if ctl != nil && s.w.faults < m.cfg.faults {
			faults = append(faults, variants(mv, ctl, m.cfg)...)
		}
		if c.child(s, mv, ctl, depth) {
			settled = false
		}
	}
	for _, mv := range faults {
		m.restore(s)
		ctl := m.apply(mv)
		c.child(s, mv, ctl, depth)
	}
	c.timePasses(s, settled, depth)
}

// timePasses ticks the clock: freely when nothing else can happen (the system
// waits for time), within the budget of mid-flight ticks otherwise. A settled
// state at the time bound is an end state.
func (c *checker) timePasses(s *snapshot, settled bool, depth int) {
	m := c.m
	if s.w.clock.Add(tick).After(t0.Add(m.cfg.horizon)) {
		if settled {
			m.restore(s)
			m.checkEnd()
			c.res.ends++
			if len(m.bad) > 0 {
				c.record(c.res.violations, move{kind: "end"}, m.bad)
			}
		}
		return
	}
	if !settled && s.w.ticks >= m.cfg.midTicks {
		return
	}
	for _, h := range s.w.hosts {
		if h.pending && !s.w.clock.Add(tick).Before(h.asked.Add(rebootTimeout)) {
			// A host reboots within --reboot-timeout of the request or not at
			// all (that is what the timeout says; not at all is the fault lose).
			return
		}
	}
	m.restore(s)
	if !settled {
		m.w.ticks++
	}
	ctl := m.apply(move{kind: "tick"})
	c.child(s, move{kind: "tick"}, ctl, depth)
}

// child looks at the state a move from s reached: it records what the move
// broke, and explores the state if it is new. It reports whether the move
// changed the state.
func (c *checker) child(s *snapshot, mv move, ctl *stepCtl, depth int) bool {
	m := c.m
	c.res.transitions++
	if ctl != nil && ctl.waitRanOut != "" {
		m.fail("own write never seen: the agent waited for its cache to show a write of %s that never happened", ctl.waitRanOut)
	}
	if len(m.bad) > 0 {
		c.record(c.res.violations, mv, m.bad)
		return true
	}
	k := m.hash()
	if k == s.key {
		return false
	}
	spent, seen := c.seen[k]
	if seen && spent <= m.w.faults {
		return true
	}
	if !seen {
		c.res.states++
	}
	c.seen[k] = m.w.faults
	c.path = append(c.path, mv.String())
	c.explore(m.capture(k), depth+1)
	c.path = c.path[:len(c.path)-1]
	return true
}

// record keeps the shortest path to each kind of violation (the text before
// the first colon names it).
func (c *checker) record(into map[string][]string, mv move, bad []string) {
	path := append(append([]string(nil), c.path...), mv.String())
	sort.Strings(bad)
	for _, b := range bad {
		name, _, _ := strings.Cut(b, ":")
		if old, ok := into[name]; !ok || len(path)+1 < len(old) {
			into[name] = append(append([]string(nil), path...), "=> "+b)
		}
	}
}

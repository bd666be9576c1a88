package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/maphash"
	"math"
	"reflect"
	"slices"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/agent"
	"github.com/nodepatch/nodepatch/pkg/controller"
	"github.com/nodepatch/nodepatch/pkg/lock"
)

// key identifies a state: a 128-bit hash of the world and of every actor's memory.
type key [16]byte

// snapshot is a state the checker can come back to. An agent's memory is kept
// as a deep copy of its struct (and of its Semaphore's); restore makes another
// copy, so a snapshot never changes. Restore checks now and then that the
// restored state hashes as the snapshot did: memory the copy missed would show.
type snapshot struct {
	w         *world
	agents    []*agent.Agent
	sems      []*lock.Semaphore
	refs      []*lockRef
	ctrls     []*controller.Rollout
	agentKeys []key
	key       key
}

// capture snapshots the live state, whose key is k. The live agents then equal
// the snapshot's, so restoring it later copies only the agents changed since.
func (m *model) capture(k key) *snapshot {
	s := &snapshot{w: m.w.clone(), agents: make([]*agent.Agent, len(m.agents)),
		sems: make([]*lock.Semaphore, len(m.agents)), refs: slices.Clone(m.refs),
		ctrls: make([]*controller.Rollout, len(m.ctrls)), agentKeys: slices.Clone(m.agentKeys), key: k}
	for i, a := range m.agents {
		if a != nil {
			s.agents[i], s.sems[i] = cloneMem(a), cloneMem(m.sems[i])
		}
	}
	for j, r := range m.ctrls {
		s.ctrls[j] = cloneMem(r)
	}
	m.live = s
	clear(m.dirty)
	return s
}

func (m *model) restore(s *snapshot) {
	m.w, m.bad = s.w.clone(), nil
	for i, ref := range s.refs {
		if m.live == s && !m.dirty[i] {
			continue
		}
		m.agentKeys[i], m.keyed[i], m.keyedAt[i] = s.agentKeys[i], true, s.w.clock
		if ref == nil {
			m.agents[i], m.sems[i], m.refs[i] = nil, nil, nil
			continue
		}
		a, sem := cloneMem(s.agents[i]), cloneMem(s.sems[i])
		ref.Lock = sem
		m.agents[i], m.sems[i], m.refs[i] = a, sem, ref
	}
	for j, r := range s.ctrls {
		if i := m.cfg.nodes + j; m.live != s || m.dirty[i] {
			m.agentKeys[i], m.keyed[i], m.keyedAt[i] = s.agentKeys[i], true, s.w.clock
			m.ctrls[j] = cloneMem(r)
		}
	}
	m.live = s
	clear(m.dirty)
	m.restores++
	if m.restores%64 != 0 {
		return // checking one restore in 64 finds a copying bug as surely, at less cost
	}
	clear(m.keyed)
	if got := m.hash(); got != s.key {
		panic("model: a restored state differs from its snapshot: some agent, lock or controller memory is not copied deeply enough")
	}
}

// touched marks actor i's memory as changed by the move being made.
func (m *model) touched(i int) {
	m.dirty[i], m.keyed[i] = true, false
}

// hash is the state's key. Objects are hashed once (they never change).
func (m *model) hash() key { return m.hashExcept(-1) }

// hashExcept is the key of the state with controller ctl's caches left out
// (none for -1): equal for two states that differ only in how far that
// controller's cache has got (see rounds).
func (m *model) hashExcept(ctl int) key {
	w := m.w
	b := &m.buf
	*b = (*b)[:0]
	putTime(b, w.clock)
	putInt(b, int64(w.ticks)) // not the faults spent: see checker
	for _, name := range m.nodeNames {
		putBytes(b, m.objectHash(w.nodes[name]))
		putInt(b, int64(w.rv[nodeKey(name)]))
	}
	for _, name := range m.leaseNames {
		putBytes(b, m.objectHash(w.leases[name]))
		putInt(b, int64(w.rv[leaseKey(name)]))
	}
	for _, c := range w.caches {
		m.putCache(c)
	}
	for _, hs := range w.hosts {
		putInt(b, int64(hs.boot))
		putInt(b, int64(hs.reboots))
		putBool(b, hs.needs)
		putBool(b, hs.pending)
		putTime(b, hs.asked)
		putString(b, hs.askedFor)
		putInt(b, int64(hs.cycles))
		putInt(b, int64(hs.bootAtAttempt))
		putBool(b, hs.admitted)
	}
	for i := range m.agents {
		k := m.agentKey(i)
		putBytes(b, k[:])
	}
	for _, k := range m.controllerKeys(ctl) {
		putBytes(b, k[:])
	}
	return m.sum(*b)
}

// agentKey hashes actor i's memory: an agent's and its lock's (or that it is
// down), or a controller's; it is remembered until the actor's next move.
func (m *model) agentKey(i int) key {
	if m.keyed[i] && m.keyedAt[i].Equal(m.w.clock) {
		return m.agentKeys[i] // the hash reads the clock (see nextHostCheck)
	}
	var b []byte
	if i >= m.cfg.nodes {
		mh := memHasher{m: m, b: &b, now: m.w.clock, seen: map[uintptr]bool{}}
		mh.walk(reflect.ValueOf(m.ctrls[i-m.cfg.nodes]).Elem())
	} else if a := m.agents[i]; a != nil {
		putBool(&b, true)
		mh := memHasher{m: m, b: &b, now: m.w.clock, seen: map[uintptr]bool{}}
		mh.walk(reflect.ValueOf(a).Elem())
		mh.skipTimers = m.cfg.ttl == 0
		mh.walk(reflect.ValueOf(m.sems[i]).Elem())
	}
	m.agentKeys[i], m.keyed[i], m.keyedAt[i] = m.sum(b), true, m.w.clock
	return m.agentKeys[i]
}

func (m *model) putCache(c *cache) {
	b := &m.buf
	putBool(b, c != nil)
	if c == nil {
		return
	}
	putBytes(b, m.objectHash(c.node))
	putInt(b, int64(len(c.nodeQ)))
	for _, n := range c.nodeQ {
		putBytes(b, m.objectHash(n))
	}
	for _, name := range m.leaseNames {
		putBytes(b, m.objectHash(c.leases[name]))
	}
	putInt(b, int64(len(c.leaseQ)))
	for _, l := range c.leaseQ {
		putBytes(b, m.objectHash(l))
	}
}

// sum is a 128-bit hash of b: two 64-bit hashes with different seeds.
func (m *model) sum(b []byte) key {
	var k key
	binary.LittleEndian.PutUint64(k[:8], maphash.Bytes(m.seeds[0], b))
	binary.LittleEndian.PutUint64(k[8:], maphash.Bytes(m.seeds[1], b))
	return k
}

// objectHash hashes an object's JSON (map keys sorted, so it is canonical),
// remembered per pointer since stored objects never change.
func (m *model) objectHash(obj any) []byte {
	switch o := obj.(type) {
	case *corev1.Node:
		if o == nil {
			return []byte{0}
		}
	case *coordinationv1.Lease:
		if o == nil {
			return []byte{0}
		}
	}
	if sum, ok := m.objHashes[obj]; ok {
		return sum
	}
	if len(m.objHashes) > 1<<14 {
		clear(m.objHashes) // the memo keeps its objects alive; start afresh now and then
	}
	data, err := json.Marshal(obj)
	must(err)
	k := m.sum(data)
	m.objHashes[obj] = k[:]
	return k[:]
}

// memHasher hashes an agent's (or a Semaphore's, or a controller's) memory by
// reflection, so that whatever it keeps in memory is in the state, including
// fields added later. Interfaces, functions and channels are its configuration
// and effects (the model's fakes and caches, the logger, the metrics), not
// memory, and are skipped, as are the agent's and the controller's
// configuration and the agent's once-only Event texts (told), the text of the
// Drained Event it holds back (drained) and when a wait for a slot began
// (lockWait), which change what Events say, never what the agent does.
type memHasher struct {
	m    *model
	b    *[]byte
	now  time.Time
	seen map[uintptr]bool
	// skipTimers leaves out the lock's record of when it saw each slot
	// version and when it last confirmed its own: without a TTL the lock never
	// reads them (reclaimable and Fenced look only with a TTL), and they would
	// tell apart states that behave the same. It leaves out too the holders
	// found to be Nodes (exists, on the real clock: it can only put off a
	// reclaim, never allow one) and the wait for a suggested slot (the
	// model's agents are suggested none).
	skipTimers bool
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	agentType     = reflect.TypeFor[agent.Agent]()
	rolloutType   = reflect.TypeFor[controller.Rollout]()
	semaphoreType = reflect.TypeFor[lock.Semaphore]()
)

func (mh memHasher) walk(v reflect.Value) {
	b := mh.b
	if v.CanAddr() {
		v = open(v) // so that maps and times inside read as plain values
	}
	switch v.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Interface:
	case reflect.Pointer:
		mh.pointer(v)
	case reflect.Struct:
		mh.structure(v)
	case reflect.Map:
		mh.mapping(v)
	case reflect.Slice, reflect.Array:
		putInt(b, int64(v.Len()))
		for i := range v.Len() {
			mh.walk(v.Index(i))
		}
	case reflect.String:
		putString(b, v.String())
	case reflect.Bool:
		putBool(b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		putInt(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		putInt(b, int64(v.Uint()))
	case reflect.Float32, reflect.Float64:
		putInt(b, int64(math.Float64bits(v.Float())))
	default:
		panic("model: cannot hash agent memory of kind " + v.Kind().String())
	}
}

func (mh memHasher) pointer(v reflect.Value) {
	if v.IsNil() {
		putBool(mh.b, false)
		return
	}
	putBool(mh.b, true)
	if mh.seen[v.Pointer()] {
		return
	}
	mh.seen[v.Pointer()] = true
	mh.walk(v.Elem())
}

func (mh memHasher) structure(v reflect.Value) {
	t := v.Type()
	if t == timeType {
		putTime(mh.b, timeOf(v))
		return
	}
	for i := range v.NumField() {
		if t == semaphoreType && mh.skipTimers {
			if name := t.Field(i).Name; name == "seen" || name == "confirmed" || name == "exists" ||
				name == "waitingFor" || name == "waitingSince" {
				continue
			}
		}
		if t == rolloutType && t.Field(i).Name == "cfg" {
			continue
		}
		if t == agentType {
			switch t.Field(i).Name {
			case "cfg", "told", "lockWait", "drained":
				continue
			case "nextHostCheck":
				// Only whether the host is asked at the next look matters: ticks
				// are longer than the jittered period (see tick).
				putBool(mh.b, !mh.now.Before(timeOf(v.Field(i))))
				continue
			}
		}
		putInt(mh.b, int64(i))
		mh.walk(v.Field(i))
	}
}

func (mh memHasher) mapping(v reflect.Value) {
	sums := make([]key, 0, v.Len())
	iter := v.MapRange()
	for iter.Next() {
		var sub []byte
		inner := memHasher{m: mh.m, b: &sub, now: mh.now, seen: mh.seen}
		inner.walk(addressable(iter.Key()))
		inner.walk(addressable(iter.Value()))
		sums = append(sums, mh.m.sum(sub))
	}
	slices.SortFunc(sums, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	putInt(mh.b, int64(len(sums)))
	for _, s := range sums {
		putBytes(mh.b, s[:])
	}
}

// timeOf reads a time.Time, which may sit in an unexported field.
func timeOf(v reflect.Value) time.Time {
	if !v.CanInterface() {
		v = open(v)
	}
	return v.Interface().(time.Time)
}

func putTime(b *[]byte, t time.Time) {
	putBool(b, t.IsZero())
	if !t.IsZero() {
		putInt(b, t.UnixNano())
	}
}

func putInt(b *[]byte, n int64) { *b = binary.LittleEndian.AppendUint64(*b, uint64(n)) }

func putString(b *[]byte, s string) {
	putInt(b, int64(len(s)))
	*b = append(*b, s...)
}

func putBytes(b *[]byte, p []byte) { *b = append(*b, p...) }

func putBool(b *[]byte, v bool) {
	if v {
		*b = append(*b, 1)
	} else {
		*b = append(*b, 0)
	}
}

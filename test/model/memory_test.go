package model

import (
	"reflect"
	"strings"
	"time"

	"github.com/nodepatch/nodepatch/pkg/lock"
)

// The agent's and the lock's memory live in unexported fields. The model reads
// and copies them by reflection (reflect.NewAt on a field's address lifts the
// read-only mark of an unexported field); nothing else in the model touches them.

// cloneMem returns a copy of *p that shares nothing mutable with it: maps,
// slices and pointers to nodepatch's own types are copied deeply. Interfaces,
// functions, channels, times and pointers to other packages' types (the
// agent's configuration and effects, a time zone, the metrics) are shared: they
// are settings and sinks, not memory. The agent's and the controller's cfg are
// shared whole.
func cloneMem[T any](p *T) *T {
	c := new(T)
	copyValue(reflect.ValueOf(c).Elem(), reflect.ValueOf(p).Elem(), map[uintptr]reflect.Value{})
	return c
}

const ownPackages = "github.com/nodepatch/nodepatch/"

func copyValue(dst, src reflect.Value, done map[uintptr]reflect.Value) {
	dst, src = open(dst), open(src)
	switch src.Kind() {
	case reflect.Struct:
		if src.Type() == timeType {
			dst.Set(src)
			return
		}
		for i := range src.NumField() {
			if (src.Type() == agentType || src.Type() == rolloutType) && src.Type().Field(i).Name == "cfg" {
				open(dst.Field(i)).Set(open(src.Field(i)))
				continue
			}
			copyValue(dst.Field(i), src.Field(i), done)
		}
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		iter := src.MapRange()
		for iter.Next() {
			v := reflect.New(src.Type().Elem()).Elem()
			copyValue(v, addressable(iter.Value()), done)
			m.SetMapIndex(iter.Key(), v)
		}
		dst.Set(m)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			copyValue(s.Index(i), src.Index(i), done)
		}
		dst.Set(s)
	case reflect.Pointer:
		copyPointer(dst, src, done)
	default:
		dst.Set(src)
	}
}

func copyPointer(dst, src reflect.Value, done map[uintptr]reflect.Value) {
	if src.IsNil() || !strings.HasPrefix(src.Type().Elem().PkgPath(), ownPackages) {
		dst.Set(src)
		return
	}
	if p, ok := done[src.Pointer()]; ok {
		dst.Set(p)
		return
	}
	p := reflect.New(src.Type().Elem())
	done[src.Pointer()] = p
	copyValue(p.Elem(), src.Elem(), done)
	dst.Set(p)
}

// open lifts the read-only mark of a value reached through unexported fields;
// the value must be addressable (fields and slice elements are) or plain.
func open(v reflect.Value) reflect.Value {
	if v.CanSet() || (v.CanInterface() && !v.CanAddr()) {
		return v
	}
	return reflect.NewAt(v.Type(), v.Addr().UnsafePointer()).Elem()
}

// addressable is a copy of v that can be addressed, so that its unexported
// fields can be opened (map keys and values cannot be addressed).
func addressable(v reflect.Value) reflect.Value {
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	return c
}

// setMonotonic gives a Semaphore the model's clock as its monotonic clock (the
// base of TTL expiry and self-fencing), which lock.New takes from the machine.
func setMonotonic(s *lock.Semaphore, now func() time.Time) {
	f := reflect.ValueOf(s).Elem().FieldByName("mono")
	if !f.IsValid() {
		panic("model: lock.Semaphore has no field mono any more; the model needs a way to give it the model's clock")
	}
	open(f).Set(reflect.ValueOf(now))
}

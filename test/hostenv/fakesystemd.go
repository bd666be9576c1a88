package hostenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/require"
)

const (
	systemdName    = "org.freedesktop.systemd1"
	systemdPath    = godbus.ObjectPath("/org/freedesktop/systemd1")
	managerIface   = "org.freedesktop.systemd1.Manager"
	unitIface      = "org.freedesktop.systemd1.Unit"
	serviceIface   = "org.freedesktop.systemd1.Service"
	propsIface     = "org.freedesktop.DBus.Properties"
	unitPathPrefix = "/org/freedesktop/systemd1/unit"
	errNoSuchUnit  = "org.freedesktop.systemd1.NoSuchUnit"
	errAccess      = "org.freedesktop.DBus.Error.AccessDenied"
	exitExec       = 203 // systemd's EXIT_EXEC
	cldExited      = 1
	cldKilled      = 2
)

// Call is one method call the double received.
type Call struct {
	Method string
	Unit   string
	Mode   string
	Props  map[string]godbus.Variant
}

// StartUnitFunc decides how the double answers StartUnit: a D-Bus error
// refuses the job; otherwise the job is accepted and, unless result is "",
// JobRemoved is emitted with that result.
type StartUnitFunc func(unit, mode string) (result string, err *godbus.Error)

// FakeSystemd answers systemd's Manager API on a bus, as a test double. It
// runs transient services as local processes and exposes their properties.
type FakeSystemd struct {
	conn *godbus.Conn

	mu    sync.Mutex
	job   uint32
	units map[string]*fakeUnit
	calls []Call
	// OnStartUnit answers StartUnit; nil accepts every unit with "done".
	onStartUnit StartUnitFunc
	// forget makes finished transient units vanish before they can be read.
	forget bool
	// hold keeps transient jobs from ever reporting a result.
	hold bool
}

type fakeUnit struct {
	name   string
	active string
	sub    string
	result string
	code   int32
	status int32
	pid    uint32
	proc   *os.Process
}

// StartFakeSystemd connects a double to the bus at address and takes
// systemd's name there.
func StartFakeSystemd(t testing.TB, address string) *FakeSystemd {
	t.Helper()
	conn, err := godbus.Connect(address)
	require.NoError(t, err, "connect the systemd double to %s", address)
	f := &FakeSystemd{conn: conn, units: map[string]*fakeUnit{}}
	t.Cleanup(f.stop)
	require.NoError(t, conn.ExportWithMap(&manager{f}, nil, systemdPath, managerIface))
	require.NoError(t, conn.ExportSubtree(&unitProps{f}, unitPathPrefix, propsIface))
	reply, err := conn.RequestName(systemdName, godbus.NameFlagDoNotQueue)
	require.NoError(t, err)
	require.Equal(t, godbus.RequestNameReplyPrimaryOwner, reply)
	return f
}

// OnStartUnit sets how StartUnit is answered.
func (f *FakeSystemd) OnStartUnit(fn StartUnitFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onStartUnit = fn
}

// ForgetFinishedUnits makes transient units vanish once they finish, as
// when something else stops and collects them.
func (f *FakeSystemd) ForgetFinishedUnits() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forget = true
}

// HoldJobs keeps transient jobs from reporting a result.
func (f *FakeSystemd) HoldJobs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hold = true
}

// Calls returns the method calls received so far.
func (f *FakeSystemd) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Call(nil), f.calls...)
}

// Units returns the names of the units the double still knows.
func (f *FakeSystemd) Units() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for n := range f.units {
		names = append(names, n)
	}
	return names
}

// RunningPIDs returns the process ids of units still running.
func (f *FakeSystemd) RunningPIDs() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var pids []int
	for _, u := range f.units {
		if u.proc != nil && u.active == "activating" {
			pids = append(pids, u.proc.Pid)
		}
	}
	return pids
}

func (f *FakeSystemd) stop() {
	for _, pid := range f.RunningPIDs() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	_ = f.conn.Close()
}

func (f *FakeSystemd) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *FakeSystemd) newJob() (uint32, godbus.ObjectPath) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.job++
	return f.job, godbus.ObjectPath(fmt.Sprintf("/org/freedesktop/systemd1/job/%d", f.job))
}

// jobRemoved is emitted from a goroutine, after the method reply, as
// systemd does.
func (f *FakeSystemd) jobRemoved(id uint32, job godbus.ObjectPath, unit, result string) {
	go func() {
		_ = f.conn.Emit(systemdPath, managerIface+".JobRemoved", id, job, unit, result)
	}()
}

func unitPath(name string) godbus.ObjectPath {
	return godbus.ObjectPath(unitPathPrefix + "/" + sdbus.PathBusEscape(name))
}

// manager is the exported org.freedesktop.systemd1.Manager object.
type manager struct{ f *FakeSystemd }

func (m *manager) StartUnit(name, mode string) (godbus.ObjectPath, *godbus.Error) {
	f := m.f
	f.record(Call{Method: "StartUnit", Unit: name, Mode: mode})
	f.mu.Lock()
	fn := f.onStartUnit
	f.mu.Unlock()
	result := "done"
	if fn != nil {
		var err *godbus.Error
		if result, err = fn(name, mode); err != nil {
			return "", err
		}
	}
	id, job := f.newJob()
	if result != "" {
		f.jobRemoved(id, job, name, result)
	}
	return job, nil
}

type property struct {
	Name  string
	Value godbus.Variant
}

type auxUnit struct {
	Name  string
	Props []property
}

// execStart is one ExecStart entry; systemd reads its flag as "ignore
// failure" (the "-" prefix).
type execStart struct {
	Path          string
	Args          []string
	IgnoreFailure bool
}

func (m *manager) StartTransientUnit(name, mode string, props []property, aux []auxUnit) (godbus.ObjectPath, *godbus.Error) {
	f := m.f
	pm := map[string]godbus.Variant{}
	for _, p := range props {
		pm[p.Name] = p.Value
	}
	f.record(Call{Method: "StartTransientUnit", Unit: name, Mode: mode, Props: pm})
	var execs []execStart
	if v, ok := pm["ExecStart"]; !ok || v.Store(&execs) != nil || len(execs) != 1 {
		return "", godbus.NewError("org.freedesktop.DBus.Error.InvalidArgs", []any{"ExecStart must hold one command"})
	}
	f.mu.Lock()
	if _, exists := f.units[name]; exists {
		f.mu.Unlock()
		return "", godbus.NewError("org.freedesktop.systemd1.UnitExists", []any{"Unit " + name + " already exists."})
	}
	u := &fakeUnit{name: name, active: "activating", sub: "start"}
	f.units[name] = u
	f.mu.Unlock()

	id, job := f.newJob()
	proc, err := startProcess(execs[0], pm)
	if err != nil {
		f.finish(u, nil, err, execs[0].IgnoreFailure, id, job)
		return job, nil
	}
	f.mu.Lock()
	u.proc, u.pid = proc, uint32(proc.Pid)
	f.mu.Unlock()
	go f.wait(u, proc, execs[0].IgnoreFailure, timeoutOf(pm), id, job)
	return job, nil
}

func (m *manager) StopUnit(name, mode string) (godbus.ObjectPath, *godbus.Error) {
	f := m.f
	f.record(Call{Method: "StopUnit", Unit: name, Mode: mode})
	f.mu.Lock()
	u, ok := f.units[name]
	if ok && u.active != "failed" {
		delete(f.units, name)
	}
	f.mu.Unlock()
	if !ok {
		return "", noSuchUnit(name)
	}
	if u.proc != nil {
		_ = syscall.Kill(-u.proc.Pid, syscall.SIGKILL)
	}
	id, job := f.newJob()
	f.jobRemoved(id, job, name, "done")
	return job, nil
}

func (m *manager) ResetFailedUnit(name string) *godbus.Error {
	f := m.f
	f.record(Call{Method: "ResetFailedUnit", Unit: name})
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.units[name]
	if !ok {
		return noSuchUnit(name)
	}
	if u.active == "failed" {
		delete(f.units, name)
	}
	return nil
}

func (m *manager) GetUnit(name string) (godbus.ObjectPath, *godbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	if _, ok := m.f.units[name]; !ok {
		return "", noSuchUnit(name)
	}
	return unitPath(name), nil
}

// unitStatus is one entry of ListUnits: a(ssssssouso).
type unitStatus struct {
	Name, Description, LoadState, ActiveState, SubState, Followed string
	Path                                                          godbus.ObjectPath
	JobID                                                         uint32
	JobType                                                       string
	JobPath                                                       godbus.ObjectPath
}

func (m *manager) ListUnitsByPatterns(states, patterns []string) ([]unitStatus, *godbus.Error) {
	m.f.record(Call{Method: "ListUnitsByPatterns"})
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	out := []unitStatus{}
	for name, u := range m.f.units {
		if !matchAny(patterns, name) || (len(states) > 0 && !contains(states, u.active)) {
			continue
		}
		out = append(out, unitStatus{Name: name, LoadState: "loaded", ActiveState: u.active, SubState: u.sub,
			Path: unitPath(name), JobPath: "/"})
	}
	return out, nil
}

func matchAny(patterns []string, name string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func noSuchUnit(name string) *godbus.Error {
	return godbus.NewError(errNoSuchUnit, []any{"Unit " + name + " not loaded."})
}

func timeoutOf(pm map[string]godbus.Variant) time.Duration {
	if v, ok := pm["TimeoutStartUSec"]; ok {
		if us, ok := v.Value().(uint64); ok && us > 0 && us < uint64(1<<62) {
			return time.Duration(us) * time.Microsecond
		}
	}
	return 0
}

func startProcess(e execStart, pm map[string]godbus.Variant) (*os.Process, error) {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if v, ok := pm["Environment"]; ok {
		var more []string
		if err := v.Store(&more); err != nil {
			return nil, err
		}
		env = append(env, more...)
	}
	cmd := exec.Command(e.Path)
	cmd.Args = expandArgs(e.Args, env)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	files, err := outputFiles(pm)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	if len(files) > 0 {
		cmd.Stdout = files[0]
		cmd.Stderr = files[len(files)-1]
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return cmd.Process, nil
}

// expandArgs does systemd's expansion of ExecStart arguments: "${VAR}" and
// "$VAR" take the unit's environment, "$$" is a literal "$".
func expandArgs(args, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	out := make([]string, len(args))
	for i, a := range args {
		var b strings.Builder
		for j := 0; j < len(a); j++ {
			if a[j] != '$' || j+1 == len(a) {
				b.WriteByte(a[j])
				continue
			}
			switch rest := a[j+1:]; {
			case rest[0] == '$':
				b.WriteByte('$')
				j++
			case rest[0] == '{' && strings.Contains(rest, "}"):
				name := rest[1:strings.IndexByte(rest, '}')]
				b.WriteString(vars[name])
				j += len(name) + 2
			default:
				n := 0
				for n < len(rest) && (rest[n] == '_' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= '0' && rest[n] <= '9') {
					n++
				}
				if n == 0 {
					b.WriteByte('$')
					continue
				}
				b.WriteString(vars[rest[:n]])
				j += n
			}
		}
		out[i] = b.String()
	}
	return out
}

// outputFiles opens StandardOutputFile and StandardErrorFile as systemd
// does (created, not truncated); stderr "inherit" shares stdout's file.
func outputFiles(pm map[string]godbus.Variant) ([]*os.File, error) {
	var files []*os.File
	for _, key := range []string{"StandardOutputFile", "StandardErrorFile"} {
		v, ok := pm[key]
		if !ok {
			continue
		}
		f, err := os.OpenFile(v.Value().(string), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return files, err
		}
		files = append(files, f)
	}
	return files, nil
}

func (f *FakeSystemd) wait(u *fakeUnit, proc *os.Process, ignoreFailure bool, timeout time.Duration, id uint32, job godbus.ObjectPath) {
	timedOut := make(chan struct{})
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() {
			close(timedOut)
			_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
		})
		defer t.Stop()
	}
	st, err := proc.Wait()
	select {
	case <-timedOut:
		err = errTimeout
	default:
	}
	f.finish(u, st, err, ignoreFailure, id, job)
}

var errTimeout = errors.New("timeout")

// finish records the end of a unit's process as systemd would: Type=oneshot
// with RemainAfterExit stays active on success and turns failed otherwise.
func (f *FakeSystemd) finish(u *fakeUnit, st *os.ProcessState, err error, ignoreFailure bool, id uint32, job godbus.ObjectPath) {
	f.mu.Lock()
	switch {
	case errors.Is(err, errTimeout):
		u.result, u.code, u.status = "timeout", cldKilled, int32(syscall.SIGKILL)
	case err != nil:
		u.result, u.code, u.status = "exit-code", cldExited, exitExec
	case st.Sys().(syscall.WaitStatus).Signaled():
		u.result, u.code, u.status = "signal", cldKilled, int32(st.Sys().(syscall.WaitStatus).Signal())
	case st.ExitCode() != 0:
		u.result, u.code, u.status = "exit-code", cldExited, int32(st.ExitCode())
	default:
		u.result, u.code, u.status = "success", cldExited, 0
	}
	if ignoreFailure && u.result != "timeout" {
		u.result = "success"
	}
	jobResult := "done"
	u.active, u.sub = "active", "exited"
	if u.result != "success" {
		u.active, u.sub, jobResult = "failed", "failed", "failed"
	}
	if f.forget {
		delete(f.units, u.name)
	}
	hold := f.hold
	f.mu.Unlock()
	if !hold {
		f.jobRemoved(id, job, u.name, jobResult)
	}
}

// unitProps answers org.freedesktop.DBus.Properties for every unit path.
type unitProps struct{ f *FakeSystemd }

func (p *unitProps) lookup(msg godbus.Message) (*fakeUnit, *godbus.Error) {
	path, _ := msg.Headers[godbus.FieldPath].Value().(godbus.ObjectPath)
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	for name, u := range p.f.units {
		if unitPath(name) == path {
			cp := *u
			return &cp, nil
		}
	}
	return nil, godbus.NewError(errNoSuchUnit, []any{fmt.Sprintf("No unit at %s.", path)})
}

func (p *unitProps) GetAll(msg godbus.Message, iface string) (map[string]godbus.Variant, *godbus.Error) {
	u, err := p.lookup(msg)
	if err != nil {
		return nil, err
	}
	switch iface {
	case unitIface:
		return map[string]godbus.Variant{
			"Id":          godbus.MakeVariant(u.name),
			"LoadState":   godbus.MakeVariant("loaded"),
			"ActiveState": godbus.MakeVariant(u.active),
			"SubState":    godbus.MakeVariant(u.sub),
		}, nil
	case serviceIface:
		return map[string]godbus.Variant{
			"Result":         godbus.MakeVariant(u.result),
			"ExecMainCode":   godbus.MakeVariant(u.code),
			"ExecMainStatus": godbus.MakeVariant(u.status),
			"ExecMainPID":    godbus.MakeVariant(u.pid),
		}, nil
	}
	return nil, godbus.NewError("org.freedesktop.DBus.Error.UnknownInterface", []any{iface})
}

func (p *unitProps) Get(msg godbus.Message, iface, name string) (godbus.Variant, *godbus.Error) {
	all, err := p.GetAll(msg, iface)
	if err != nil {
		return godbus.Variant{}, err
	}
	v, ok := all[name]
	if !ok {
		return godbus.Variant{}, godbus.NewError("org.freedesktop.DBus.Error.UnknownProperty", []any{name})
	}
	return v, nil
}

// AccessDenied is a refusal as systemd's polkit check gives it.
func AccessDenied(what string) *godbus.Error {
	return godbus.NewError(errAccess, []any{"Access denied: " + what})
}

// NoSuchUnit is systemd's answer for an unknown unit.
func NoSuchUnit(name string) *godbus.Error { return noSuchUnit(name) }

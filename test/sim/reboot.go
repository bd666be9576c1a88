package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/test/harness"
)

// watchHost polls the host's reboot request every 50ms (it stands for the
// hardware, which reacts at once) and performs or ignores each request.
func (s *Supervisor) watchHost(name string) {
	defer s.loops.Done()
	host := s.Host(name)
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
		}
		if !host.RebootRequested() {
			continue
		}
		if err := s.handleRebootRequest(name, host); err != nil && s.ctx.Err() == nil {
			s.recordErr(err)
		}
	}
}

func (s *Supervisor) handleRebootRequest(name string, host *Host) error {
	if s.opts.OnRebootRequest != nil {
		s.opts.OnRebootRequest(name)
	}
	fail := false
	_ = s.withNode(name, func(n *simNode) error {
		fail = n.failReboot
		n.requestsThisBoot++
		if fail {
			n.ignored++
		}
		return nil
	})
	if fail {
		s.logf("%s: reboot requested; ignored (FailReboot)", name)
		return host.clearRebootRequest()
	}
	return s.reboot(name, host)
}

// reboot simulates a reboot: the agent dies with the machine, the Node goes
// NotReady, the host comes back after RebootDuration with a new boot id
// (and without the sentinel, which lives on /run), the kubelet reports the
// new boot id and turns Ready, and the DaemonSet starts the agent again.
func (s *Supervisor) reboot(name string, host *Host) error {
	var hardware *sync.Mutex
	keepSentinel := false
	_ = s.withNode(name, func(n *simNode) error {
		hardware, n.rebooting, keepSentinel = n.hardware, true, n.persistentNeed
		return nil
	})
	hardware.Lock()
	defer hardware.Unlock()
	// On an error the host stays down, but a crash restart may start the agent.
	defer func() { _ = s.withNode(name, func(n *simNode) error { n.rebooting = false; return nil }) }()
	s.logf("%s: reboot requested; rebooting", name)
	bootID, err := powerCycle{
		client: s.client, name: name, host: host, keepSentinel: keepSentinel,
		duration: s.opts.RebootDuration, downTimeout: s.opts.DownTimeout,
		stopAgent: func() error { return s.KillAgent(name) }, logf: s.logf,
	}.run(s.ctx)
	if err != nil {
		return err
	}
	var proc *harness.Process
	err = s.withNode(name, func(n *simNode) error {
		n.reboots++
		n.rebooting, n.requestsThisBoot = false, 0
		var err error
		proc, err = s.startLocked(name, n)
		return err
	})
	if err != nil {
		return err
	}
	s.logf("%s: rebooted, boot id %s", name, bootID)
	s.started(name, proc)
	return nil
}

// powerCycle is a host's reboot as the cluster sees it, the same in both
// worlds: the agent dies with the machine, the host boots anew (a new boot
// id; the sentinel, on /run, is gone unless keepSentinel), the Node goes
// NotReady, and once duration has passed since the request the kubelet
// reports the new boot id and the Node turns Ready.
type powerCycle struct {
	client       kubernetes.Interface
	name         string
	host         *Host
	keepSentinel bool
	duration     time.Duration
	downTimeout  time.Duration // for kwok to report the Node NotReady
	stopAgent    func() error
	logf         func(format string, args ...any)
}

// run power-cycles the host and returns its new boot id.
func (p powerCycle) run(ctx context.Context) (string, error) {
	// The host is down from the request on: duration counts from here, not
	// from when kwok gets round to reporting the Node NotReady.
	back := time.Now().Add(p.duration)
	if err := p.stopAgent(); err != nil {
		return "", err
	}
	bootID, err := p.host.boot(p.keepSentinel)
	if err != nil {
		return "", err
	}
	if err := SetDown(ctx, p.client, p.name, true); err != nil {
		return "", err
	}
	downCtx, cancel := context.WithTimeout(ctx, p.downTimeout)
	defer cancel()
	if err := WaitNodeReady(downCtx, p.client, p.name, false); err != nil {
		return "", fmt.Errorf("reboot of %s: %w", p.name, err)
	}
	p.logf("%s: node NotReady", p.name)
	if err := sleepCtx(ctx, time.Until(back)); err != nil {
		return "", fmt.Errorf("reboot of %s: %w", p.name, err)
	}
	if err := SetBootID(ctx, p.client, p.name, bootID); err != nil {
		return "", err
	}
	return bootID, SetDown(ctx, p.client, p.name, false)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

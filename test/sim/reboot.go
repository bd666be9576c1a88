package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

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
	// The host is down from the request on: RebootDuration counts from here,
	// not from when kwok gets round to reporting the Node NotReady.
	back := time.Now().Add(s.opts.RebootDuration)
	if err := s.KillAgent(name); err != nil {
		return err
	}
	bootID, err := host.boot(keepSentinel)
	if err != nil {
		return err
	}
	if err := s.goDown(name); err != nil {
		return err
	}
	if err := sleepCtx(s.ctx, time.Until(back)); err != nil {
		return fmt.Errorf("reboot of %s: %w", name, err)
	}
	if err := s.comeUp(name, bootID); err != nil {
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

// goDown marks the Node down and waits until kwok reports it NotReady.
func (s *Supervisor) goDown(name string) error {
	if err := SetDown(s.ctx, s.client, name, true); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.DownTimeout)
	defer cancel()
	if err := WaitNodeReady(ctx, s.client, name, false); err != nil {
		return fmt.Errorf("reboot of %s: %w", name, err)
	}
	s.logf("%s: node NotReady", name)
	return nil
}

// comeUp reports the new boot id, then lets kwok turn the Node Ready.
func (s *Supervisor) comeUp(name, bootID string) error {
	if err := SetBootID(s.ctx, s.client, name, bootID); err != nil {
		return err
	}
	return SetDown(s.ctx, s.client, name, false)
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

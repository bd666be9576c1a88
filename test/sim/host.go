// Package sim simulates the hosts under real nodepatch agents: a folder per
// node standing for its disk (the reboot-required sentinel, the boot id),
// a kwok Node standing for its kubelet, and a supervisor that runs the agent
// and performs the reboots it asks for.
package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Host is one simulated machine: a folder holding the files the agent reads
// and writes on a real host.
type Host struct {
	Name string
	Dir  string
}

// NewHost creates Dir (with parents) for node name and gives it a first
// boot id.
func NewHost(dir, name string) (*Host, error) {
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, fmt.Errorf("host name %q: %s", name, strings.Join(errs, "; "))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create host folder %s: %w", dir, err)
	}
	h := &Host{Name: name, Dir: dir}
	if _, err := h.writeNewBootID(); err != nil {
		return nil, err
	}
	return h, nil
}

// SentinelPath is the host's /var/run/reboot-required.
func (h *Host) SentinelPath() string { return filepath.Join(h.Dir, "reboot-required") }

// BootIDPath is the host's /proc/sys/kernel/random/boot_id.
func (h *Host) BootIDPath() string { return filepath.Join(h.Dir, "boot_id") }

// RebootRequestPath is the file the agent's reboot command creates: the
// simulated power button.
func (h *Host) RebootRequestPath() string { return filepath.Join(h.Dir, "reboot-requested") }

// SetRebootRequired writes the sentinel, as a kernel package's postinst does.
func (h *Host) SetRebootRequired() error {
	if err := os.WriteFile(h.SentinelPath(), []byte("*** System restart required ***\n"), 0o644); err != nil {
		return fmt.Errorf("host %s: write sentinel: %w", h.Name, err)
	}
	return nil
}

// RebootRequired reports whether the sentinel exists.
func (h *Host) RebootRequired() bool { return fileExists(h.SentinelPath()) }

// RebootRequested reports whether the reboot command has run since the
// last (simulated) boot.
func (h *Host) RebootRequested() bool { return fileExists(h.RebootRequestPath()) }

// BootID returns the current boot id.
func (h *Host) BootID() (string, error) {
	data, err := os.ReadFile(h.BootIDPath())
	if err != nil {
		return "", fmt.Errorf("host %s: read boot id: %w", h.Name, err)
	}
	return strings.TrimSpace(string(data)), nil
}

// ClearRebootRequired removes the sentinel, as an operator who fixed the
// cause of a need that survived reboots does.
func (h *Host) ClearRebootRequired() error {
	if err := removeIfExists(h.SentinelPath()); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// boot does what a reboot does to the disk: the request is gone, the
// sentinel too (it lives on /run) unless keepSentinel (a need that survives
// reboots), and the kernel has a new boot id, which it returns.
func (h *Host) boot(keepSentinel bool) (string, error) {
	paths := []string{h.RebootRequestPath()}
	if !keepSentinel {
		paths = append(paths, h.SentinelPath())
	}
	for _, path := range paths {
		if err := removeIfExists(path); err != nil {
			return "", fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return h.writeNewBootID()
}

// clearRebootRequest removes the request without booting (a failed reboot).
func (h *Host) clearRebootRequest() error {
	if err := removeIfExists(h.RebootRequestPath()); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

func (h *Host) writeNewBootID() (string, error) {
	id, err := newUUID()
	if err != nil {
		return "", err
	}
	// Write then rename so that a reader never sees a half-written id.
	tmp := h.BootIDPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("host %s: write boot id: %w", h.Name, err)
	}
	if err := os.Rename(tmp, h.BootIDPath()); err != nil {
		return "", fmt.Errorf("host %s: write boot id: %w", h.Name, err)
	}
	return id, nil
}

// newUUID returns a random (version 4) UUID, the format of a Linux boot id.
func newUUID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random boot id: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:]), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

package host

import (
	"fmt"
	"os"
	"regexp"
	"strings"
)

// bootIDPattern is the kernel's format: a random UUID in lower-case hex.
var bootIDPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// ReadBootID reads a boot id such as /proc/sys/kernel/random/boot_id, which
// changes at every boot.
func ReadBootID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	return ParseBootID(path, string(b))
}

// ParseBootID validates a boot id read from source (a path or a command).
func ParseBootID(source, raw string) (string, error) {
	id := strings.TrimSpace(raw)
	if !bootIDPattern.MatchString(id) {
		return "", fmt.Errorf("boot id from %s: %q is not a UUID", source, truncate(id, 80))
	}
	return strings.ToLower(id), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// maxSymlinks bounds symlink expansion, as the kernel's ELOOP limit does.
const maxSymlinks = 255

// ResolveInRoot resolves p as the host would see it, with root as its "/":
// symlinks are followed inside root (an absolute target starts again at root,
// ".." stops at root), so the result never escapes root. This matters because
// a host's /var/run is usually an absolute link to /run, which seen from a
// container that mounts the host at root would otherwise point into the
// container's own /run. The final component need not exist.
func ResolveInRoot(root, p string) (string, error) {
	if root == "" {
		root = "/"
	}
	root = filepath.Clean(root)
	resolved := "" // relative to root, always clean
	remaining := p
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = parent(resolved)
			continue
		}
		next := path.Join(resolved, part)
		fi, err := os.Lstat(filepath.Join(root, next))
		if errors.Is(err, fs.ErrNotExist) {
			// Nothing below a missing entry can be a link: finish lexically.
			resolved = strings.TrimPrefix(path.Clean("/"+next+"/"+remaining), "/")
			break
		}
		if err != nil {
			return "", fmt.Errorf("resolve %q in %q: %w", p, root, err)
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			resolved = next
			continue
		}
		links++
		if links > maxSymlinks {
			return "", fmt.Errorf("resolve %q in %q: more than %d symbolic links", p, root, maxSymlinks)
		}
		target, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("resolve %q in %q: %w", p, root, err)
		}
		if strings.HasPrefix(target, "/") {
			resolved = ""
		}
		remaining = target + "/" + remaining
	}
	return filepath.Join(root, resolved), nil
}

func parent(rel string) string {
	if rel == "" {
		return ""
	}
	d := path.Dir(rel)
	if d == "." {
		return ""
	}
	return d
}

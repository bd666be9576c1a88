// Command ociimage builds a container image without a container engine: one layer
// holding the given files, and an image config with the given entrypoint, command,
// user and labels, written as a docker-archive tarball that `ctr images import` and
// `docker load` read. The real-node tests build the agent's and the pause image
// with it from static binaries, to the recipe the Dockerfile gives.
//
//	ociimage -o out.tar -tag nodepatch:dev -entrypoint /nodepatch -cmd agent -user 0:0 \
//	  ./nodepatch=/nodepatch
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type recipe struct {
	out, tag, user string
	entrypoint     listFlag
	cmd            listFlag
	labels         listFlag
	env            listFlag
	files          []string // SRC=DEST
}

func main() {
	r, err := parseFlags(os.Args[1:])
	if err == nil {
		err = build(r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ociimage:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (recipe, error) {
	var r recipe
	fs := flag.NewFlagSet("ociimage", flag.ContinueOnError)
	fs.StringVar(&r.out, "o", "", "output tarball (docker-archive)")
	fs.StringVar(&r.tag, "tag", "", "image reference recorded in the tarball, e.g. nodepatch:dev")
	fs.StringVar(&r.user, "user", "", "config User, e.g. 0:0")
	fs.Var(&r.entrypoint, "entrypoint", "config Entrypoint, one flag per word")
	fs.Var(&r.cmd, "cmd", "config Cmd, one flag per word")
	fs.Var(&r.labels, "label", "config label KEY=VALUE (repeatable)")
	fs.Var(&r.env, "env", "config environment KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return r, err
	}
	r.files = fs.Args()
	if r.out == "" || r.tag == "" || len(r.files) == 0 {
		return r, errors.New("usage: ociimage -o OUT.tar -tag REF [flags] SRC=DEST [SRC=DEST]")
	}
	return r, nil
}

func build(r recipe) error {
	layer, err := fileLayer(r.files)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return fmt.Errorf("append layer: %w", err)
	}
	img, err = withConfig(img, r)
	if err != nil {
		return err
	}
	ref, err := name.NewTag(r.tag)
	if err != nil {
		return fmt.Errorf("tag %q: %w", r.tag, err)
	}
	if err := tarball.WriteToFile(r.out, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", r.out, err)
	}
	return nil
}

func withConfig(img v1.Image, r recipe) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cf = cf.DeepCopy()
	// The binaries are built for the machine the tests run on.
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.User = r.entrypoint, r.cmd, r.user
	cf.Config.Env = r.env
	if len(r.labels) > 0 {
		cf.Config.Labels = map[string]string{}
		for _, l := range r.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				return nil, fmt.Errorf("label %q: want KEY=VALUE", l)
			}
			cf.Config.Labels[k] = v
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// fileLayer makes one layer holding each SRC=DEST file at DEST, owned by root,
// with SRC's permission bits and a fixed time, so the same inputs give the same
// layer digest.
func fileLayer(files []string) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		src, dest, ok := strings.Cut(f, "=")
		if !ok || !strings.HasPrefix(dest, "/") {
			return nil, fmt.Errorf("file %q: want SRC=/DEST", f)
		}
		if err := addFile(tw, src, strings.TrimPrefix(dest, "/")); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer: %w", err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return layer, nil
}

func addFile(tw *tar.Writer, src, dest string) error {
	content, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read %s: %w", src, err)
	}
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: dest, Size: int64(len(content)),
		Mode: int64(info.Mode().Perm()), ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("layer header %s: %w", dest, err)
	}
	if _, err := tw.Write(content); err != nil {
		return fmt.Errorf("layer %s: %w", dest, err)
	}
	return nil
}

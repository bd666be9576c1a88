package chart_test

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// stampedVersion is the VERSION build argument the tests build with.
const stampedVersion = "v9.8.7-test"

// imageBinary builds the binary once for the tests of this file: a -trimpath
// build compiles every dependency anew, which is slow on a small machine.
// A failed build is not retried by the next test.
var imageBinary = struct {
	sync.Mutex
	done bool
	path string
	err  error
}{}

func imageBinaryT(t *testing.T) string {
	t.Helper()
	imageBinary.Lock()
	defer imageBinary.Unlock()
	if !imageBinary.done {
		imageBinary.done = true
		dir, err := os.MkdirTemp("", "nodepatch-image-")
		require.NoError(t, err)
		imageBinary.path = filepath.Join(dir, "nodepatch")
		imageBinary.err = ct.BuildLikeDockerfile(t, stampedVersion, imageBinary.path)
	}
	require.NoError(t, imageBinary.err)
	return imageBinary.path
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		privilegeHelper(mode) // privilege_test.go: the test binary as a helper
	}
	code := m.Run()
	if imageBinary.path != "" {
		os.RemoveAll(filepath.Dir(imageBinary.path))
	}
	os.Exit(code)
}

func TestImageBinaryIsStaticAndStamped(t *testing.T) {
	const version = stampedVersion
	bin := imageBinaryT(t)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary asks for a dynamic loader")
		require.NotEqual(t, elf.PT_DYNAMIC, p.Type, "the binary has a dynamic section")
	}
	libs, err := f.ImportedLibraries()
	require.NoError(t, err)
	require.Empty(t, libs)
	_, err = f.Symbols()
	require.True(t, errors.Is(err, elf.ErrNoSymbols), "-s should strip the symbol table: %v", err)

	out := run(t, bin, "version")
	require.Contains(t, out, version)

	info := run(t, "go", "version", "-m", bin)
	require.Contains(t, info, "CGO_ENABLED=0")
	require.Contains(t, info, "-trimpath=true")
}

// TestChartCoversEveryAgentFlag compares the flags the chart renders with the
// flags `nodepatch agent --help` lists, so neither can change without the other.
func TestChartCoversEveryAgentFlag(t *testing.T) {
	help := run(t, imageBinaryT(t), "agent", "--help")
	flagName := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)
	var binary []string
	for _, m := range flagName.FindAllStringSubmatch(help, -1) {
		binary = append(binary, m[1])
	}
	require.NotEmpty(t, binary, "no flags in:\n%s", help)
	// Set by the pod's environment (downward API) or in-cluster config instead.
	notFromValues := []string{"node-name", "namespace", "kubeconfig", "help", "config-generation",
		// kured's name for --soak, kept for kured's command lines; the chart
		// renders --soak (agent.health.soak) only, and the agent refuses both at once.
		"lock-release-delay"}
	for _, name := range binary {
		if slices.Contains(notFromValues, name) {
			continue
		}
		require.Contains(t, agentFlags, name, "the agent has --%s, the chart has no value for it", name)
	}
	for _, name := range agentFlags {
		require.Contains(t, binary, name, "the chart sets --%s, the agent has no such flag", name)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	require.NoError(t, err, "%s %s:\n%s", name, strings.Join(args, " "), out)
	return string(out)
}

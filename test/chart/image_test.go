package chart_test

import (
	"bufio"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// dockerBuild is the `go build` step of the Dockerfile: its environment and
// its arguments after "go".
type dockerBuild struct {
	env  []string
	args []string
}

// parseDockerBuild finds the one RUN line of the Dockerfile that runs `go build`
// and splits it into environment assignments and go's arguments, expanding the
// build arguments in vars. Only what that line uses is supported: double quotes
// and ${NAME}.
func parseDockerBuild(t *testing.T, dockerfile string, vars map[string]string) dockerBuild {
	t.Helper()
	f, err := os.Open(dockerfile)
	require.NoError(t, err)
	defer f.Close()
	var runs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "RUN ") && strings.Contains(line, " go build ") {
			require.False(t, strings.HasSuffix(line, "\\"), "keep the go build step on one line: %s", line)
			runs = append(runs, strings.TrimPrefix(line, "RUN "))
		}
	}
	require.NoError(t, sc.Err())
	require.Len(t, runs, 1, "want one RUN ... go build line in the Dockerfile")

	words, err := shellWords(runs[0], vars)
	require.NoError(t, err, "Dockerfile: %s", runs[0])
	var b dockerBuild
	for len(words) > 0 && strings.Contains(words[0], "=") {
		b.env = append(b.env, words[0])
		words = words[1:]
	}
	require.GreaterOrEqual(t, len(words), 2)
	require.Equal(t, []string{"go", "build"}, words[:2], "Dockerfile: %s", runs[0])
	b.args = words[1:]
	return b
}

// shellWords splits s like a POSIX shell would for the simple lines the
// Dockerfile uses: whitespace separates words, double quotes group, and
// ${NAME} expands from vars (an unknown name is an error, not an empty string).
func shellWords(s string, vars map[string]string) ([]string, error) {
	expanded, err := expand(s, vars)
	if err != nil {
		return nil, err
	}
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range expanded {
		switch {
		case r == '"':
			quoted = !quoted
			inWord = true
		case (r == ' ' || r == '\t') && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case r == '\'' || r == '\\' || r == '$' || r == '`' || r == ';' || r == '&' || r == '|':
			return nil, fmt.Errorf("unsupported shell syntax %q in %q", r, s)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

func expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		name := varRef.FindStringSubmatch(m)[1]
		v, ok := vars[name]
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("unknown build arguments %v", missing)
	}
	return out, nil
}

// buildLikeDockerfile builds ./cmd/nodepatch into out with the Dockerfile's own
// flags. A malformed Dockerfile fails t; a failed build is returned.
func buildLikeDockerfile(t *testing.T, version, out string) error {
	t.Helper()
	root := ct.RepoRoot(t)
	ct.TrackInputs(t, "go.mod", "go.sum", "cmd", "pkg")
	b := parseDockerBuild(t, filepath.Join(root, "Dockerfile"), map[string]string{
		"VERSION": version, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
	})
	require.Contains(t, b.env, "CGO_ENABLED=0")
	require.Contains(t, b.args, "-trimpath")
	i := slices.Index(b.args, "-o")
	require.GreaterOrEqual(t, i, 0, "the Dockerfile's go build has no -o")
	args := slices.Clone(b.args)
	args[i+1] = out

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), b.env...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, msg)
	}
	return nil
}

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
		imageBinary.err = buildLikeDockerfile(t, stampedVersion, imageBinary.path)
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
	notFromValues := []string{"node-name", "namespace", "kubeconfig", "help"}
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

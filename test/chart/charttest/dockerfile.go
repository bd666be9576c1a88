package charttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
func parseDockerBuild(t testing.TB, dockerfile string, vars map[string]string) dockerBuild {
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

// BuildLikeDockerfile builds ./cmd/nodepatch into out with the Dockerfile's own
// flags. A malformed Dockerfile fails t; a failed build is returned.
func BuildLikeDockerfile(t testing.TB, version, out string) error {
	t.Helper()
	root := RepoRoot(t)
	TrackInputs(t, "go.mod", "go.sum", "cmd", "pkg")
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

// ImageConfig is what the last stage of the Dockerfile says about the image it
// makes: the config fields and where the binary goes.
type ImageConfig struct {
	Entrypoint []string
	Cmd        []string
	User       string
	Labels     map[string]string
	// Copied are the destination paths of the stage's COPY lines.
	Copied []string
}

// DockerfileImage reads the last stage of the Dockerfile (after its last FROM).
// Only the forms the Dockerfile uses are supported: ENTRYPOINT and CMD in exec
// (JSON) form, USER, LABEL KEY=VALUE ..., and COPY [--from=...] SRC DEST; any
// other instruction in that stage fails the test, so a new one cannot be
// missed by the image recipes that mirror this file.
func DockerfileImage(t testing.TB) ImageConfig {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(RepoRoot(t), "Dockerfile"))
	require.NoError(t, err)
	var stage []string
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "FROM ") {
			stage = nil
			continue
		}
		if line != "" && !strings.HasPrefix(line, "#") {
			stage = append(stage, line)
		}
	}
	cfg := ImageConfig{Labels: map[string]string{}}
	for _, line := range stage {
		instr, rest, _ := strings.Cut(line, " ")
		switch instr {
		case "ENTRYPOINT":
			require.NoError(t, json.Unmarshal([]byte(rest), &cfg.Entrypoint), "Dockerfile: %s (use the exec form)", line)
		case "CMD":
			require.NoError(t, json.Unmarshal([]byte(rest), &cfg.Cmd), "Dockerfile: %s (use the exec form)", line)
		case "USER":
			cfg.User = strings.TrimSpace(rest)
		case "LABEL":
			words, err := shellWords(rest, nil)
			require.NoError(t, err, "Dockerfile: %s", line)
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				require.True(t, ok, "Dockerfile: %s: want LABEL KEY=VALUE", line)
				cfg.Labels[k] = v
			}
		case "COPY":
			f := strings.Fields(rest)
			require.GreaterOrEqual(t, len(f), 2, "Dockerfile: %s", line)
			cfg.Copied = append(cfg.Copied, f[len(f)-1])
		default:
			require.Failf(t, "unsupported instruction in the Dockerfile's last stage", "%s", line)
		}
	}
	return cfg
}

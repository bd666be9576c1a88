package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options configure StartControlPlane.
type Options struct {
	// BinDir holds the tools; empty runs EnsureTools first.
	BinDir string
	// Dir is the working folder; empty makes a temporary one that Stop removes.
	Dir string
	// ExtraTokens are added to the static token file next to the admin's.
	ExtraTokens []Token
	// Controllers also starts kube-controller-manager and kube-scheduler.
	Controllers bool
	// Kwok also starts kwok, playing the kubelet for nodes annotated
	// kwok.x-k8s.io/node=fake, driven by the stages in KwokStages.
	Kwok bool
	// APIServerArgs are extra kube-apiserver flags, after the harness's own
	// (a later flag wins), e.g. --kubelet-preferred-address-types=InternalIP
	// for real kubelets.
	APIServerArgs []string
	// StartTimeout bounds each wait for a component; default 60s.
	StartTimeout time.Duration
	// Log receives progress and the tools build output; nil discards it.
	Log io.Writer
}

func (o Options) withDefaults() Options {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// ControlPlane is a running etcd and kube-apiserver, optionally with
// kube-controller-manager, kube-scheduler and kwok. Every component logs to
// a file in Dir.
type ControlPlane struct {
	Dir             string
	URL             string // https://127.0.0.1:port
	AdminToken      string // authenticates as user "admin" in system:masters
	AdminKubeconfig string // path of a kubeconfig for AdminToken
	CAFile          string // CA that signed the API server's certificate
	Client          kubernetes.Interface

	binDir  string
	pki     *pkiFiles
	ownsDir bool
	procs   []*Process // in start order
	// etcdArgs and apiserverArgs are kept for RestartEtcd and RestartAPIServer.
	etcdArgs      []string
	apiserverArgs []string
	stopOnce      sync.Once
	stopErr       error
}

// StartControlPlane starts etcd and kube-apiserver on 127.0.0.1 with free
// ports, and the optional components, and waits until they serve. On error
// everything started so far is stopped.
func StartControlPlane(ctx context.Context, opts Options) (*ControlPlane, error) {
	opts = opts.withDefaults()
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = EnsureTools(ctx, opts.Log); err != nil {
			return nil, err
		}
	}
	cp, err := newControlPlane(opts, binDir)
	if err != nil {
		return nil, err
	}
	if err := cp.start(ctx, opts); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	return cp, nil
}

func newControlPlane(opts Options, binDir string) (*ControlPlane, error) {
	cp := &ControlPlane{Dir: opts.Dir, binDir: binDir}
	if cp.Dir == "" {
		dir, err := os.MkdirTemp("", "nodepatch-cp-")
		if err != nil {
			return nil, fmt.Errorf("create control plane folder: %w", err)
		}
		cp.Dir, cp.ownsDir = dir, true
	} else if err := os.MkdirAll(cp.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create control plane folder %s: %w", cp.Dir, err)
	}
	pki, err := writePKI(cp.Dir)
	if err != nil {
		cp.removeDir()
		return nil, err
	}
	cp.pki, cp.CAFile = pki, pki.CACert
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context, opts Options) error {
	fmt.Fprintf(opts.Log, "control plane in %s\n", cp.Dir)
	tokens, err := cp.componentTokens(opts.ExtraTokens)
	if err != nil {
		return err
	}
	// Every port is picked before anything starts: a port picked and released
	// for etcd, which binds it only later, could otherwise be handed out again
	// for the API server (seen: "bind: address already in use").
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL, err := cp.startEtcd(ports[0], ports[1])
	if err != nil {
		return err
	}
	if err := cp.startAPIServer(etcdURL, ports[2], opts.APIServerArgs); err != nil {
		return err
	}
	if err := cp.waitAPIServerReady(ctx, opts.StartTimeout); err != nil {
		return err
	}
	if err := cp.writeAdminAccess(); err != nil {
		return err
	}
	if opts.Controllers {
		if err := cp.startControllers(ctx, tokens, opts.StartTimeout); err != nil {
			return err
		}
	}
	if opts.Kwok {
		if err := cp.startKwok(tokens["kwok"]); err != nil {
			return err
		}
	}
	fmt.Fprintf(opts.Log, "control plane ready at %s\n", cp.URL)
	return nil
}

// componentTokens makes the admin token and one token per component, and
// writes them with the caller's tokens to the static token file. The
// components get system:masters: the default roles for kube-controller-manager
// assume per-controller service accounts, which a test does not need.
func (cp *ControlPlane) componentTokens(extra []Token) (map[string]string, error) {
	tokens := map[string]string{}
	all := []Token{}
	for _, user := range []string{"admin", "kube-controller-manager", "kube-scheduler", "kwok"} {
		tok, err := RandomToken()
		if err != nil {
			return nil, err
		}
		tokens[user] = tok
		all = append(all, Token{Token: tok, User: user, UID: user, Groups: []string{"system:masters"}})
	}
	cp.AdminToken = tokens["admin"]
	all = append(all, extra...)
	if err := writeTokenFile(cp.path("tokens.csv"), all); err != nil {
		return nil, err
	}
	return tokens, nil
}

func (cp *ControlPlane) startEtcd(clientPort, peerPort int) (string, error) {
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	args := []string{
		"--data-dir=" + cp.path("etcd-data"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		// A throwaway store: skipping fsync spares the shared disk.
		"--unsafe-no-fsync=true",
	}
	cp.etcdArgs = args
	return clientURL, cp.startComponent("etcd", args, nil)
}

func (cp *ControlPlane) startAPIServer(etcdURL string, port int, extra []string) error {
	cp.URL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + cp.path("apiserver-certs"),
		"--tls-cert-file=" + cp.pki.ServerCert,
		"--tls-private-key-file=" + cp.pki.ServerKey,
		"--client-ca-file=" + cp.pki.CACert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + cp.pki.SAKey,
		"--service-account-signing-key-file=" + cp.pki.SAKey,
		"--token-auth-file=" + cp.path("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		// The loopback address cannot be an endpoint of the kubernetes
		// service; nothing in the tests dials that service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}
	args = append(args, extra...)
	cp.apiserverArgs = args
	return cp.startComponent("kube-apiserver", args, nil)
}

// RestartAPIServer stops kube-apiserver, keeps it down for down, and starts it
// again on the same port and etcd, as an upgrade or a crash of the API server
// would. It returns once /readyz answers again.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context, down time.Duration) error {
	return cp.restartComponent(ctx, "kube-apiserver", cp.apiserverArgs, down)
}

// RestartEtcd stops etcd, keeps it down for down, and starts it again on the
// same ports and data, as a crash or an upgrade of the store would. It returns
// once kube-apiserver's /readyz (which checks etcd) answers again.
func (cp *ControlPlane) RestartEtcd(ctx context.Context, down time.Duration) error {
	return cp.restartComponent(ctx, "etcd", cp.etcdArgs, down)
}

// restartComponent stops the named component, waits down, starts it with the
// same arguments and waits until the API server is ready again.
func (cp *ControlPlane) restartComponent(ctx context.Context, name string, args []string, down time.Duration) error {
	i := slices.IndexFunc(cp.procs, func(p *Process) bool { return p.Name() == name })
	if i < 0 {
		return fmt.Errorf("restart %s: it is not running", name)
	}
	if err := cp.procs[i].Stop(10 * time.Second); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(down): // the outage being simulated
	}
	path, err := ToolPath(cp.binDir, name)
	if err != nil {
		return err
	}
	proc, err := StartProcess(ProcessSpec{Name: name, Path: path, Args: args, LogPath: cp.path(name + ".log")})
	if err != nil {
		return err
	}
	cp.procs[i] = proc
	return cp.waitAPIServerReady(ctx, time.Minute)
}

// startComponent starts binDir/name with its log in Dir/name.log.
func (cp *ControlPlane) startComponent(name string, args, env []string) error {
	path, err := ToolPath(cp.binDir, name)
	if err != nil {
		return err
	}
	proc, err := StartProcess(ProcessSpec{
		Name: name, Path: path, Args: args, Env: env,
		LogPath: cp.path(name + ".log"),
	})
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, proc)
	return nil
}

func (cp *ControlPlane) waitAPIServerReady(ctx context.Context, timeout time.Duration) error {
	transport, err := rest.TransportFor(cp.RESTConfig())
	if err != nil {
		return fmt.Errorf("admin transport: %w", err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: transport}
	lastStatus := "no answer yet"
	check := func(ctx context.Context) (bool, error) {
		ok, status := readyzOK(ctx, client, cp.URL+"/readyz")
		lastStatus = status
		return ok, nil
	}
	if err := cp.waitFor(ctx, timeout, "kube-apiserver /readyz", check); err != nil {
		return fmt.Errorf("%w (last /readyz: %s)", err, lastStatus)
	}
	return nil
}

// readyzOK asks url and reports whether it answered 200, and what it said.
func readyzOK(ctx context.Context, client *http.Client, url string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	return resp.StatusCode == http.StatusOK, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
}

// waitFor polls check every 100ms until it is true, a component exits, or
// the timeout passes; errors carry the tail of every component's log.
func (cp *ControlPlane) waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		if err := cp.exitedComponent(); err != nil {
			return fmt.Errorf("waiting for %s: %w\n%s", what, err, cp.LogTails(3000))
		}
		ok, err := check(ctx)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w\n%s", what, err, cp.LogTails(3000))
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w\n%s", what, ctx.Err(), cp.LogTails(3000))
		case <-ticker.C:
		}
	}
}

// exitedComponent returns an error naming the first component that exited.
func (cp *ControlPlane) exitedComponent() error {
	for _, p := range cp.procs {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited: %v", p.Name(), err)
		}
	}
	return nil
}

func (cp *ControlPlane) writeAdminAccess() error {
	path, err := cp.KubeconfigForToken(cp.AdminToken)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cp.RESTConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	cp.AdminKubeconfig, cp.Client = path, client
	return nil
}

// RESTConfig returns a fresh admin client config.
func (cp *ControlPlane) RESTConfig() *rest.Config {
	return tokenRESTConfig(cp.URL, cp.pki.caPEM, cp.AdminToken)
}

// RESTConfigForToken returns a client config that authenticates with token.
func (cp *ControlPlane) RESTConfigForToken(token string) *rest.Config {
	return tokenRESTConfig(cp.URL, cp.pki.caPEM, token)
}

// KubeconfigForToken writes a kubeconfig that authenticates with token and
// returns its path.
func (cp *ControlPlane) KubeconfigForToken(token string) (string, error) {
	if token == "" {
		return "", errors.New("kubeconfig for token: empty token")
	}
	dir := cp.path("kubeconfigs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create kubeconfig folder: %w", err)
	}
	path := kubeconfigPathFor(dir, token)
	if err := writeKubeconfig(path, cp.URL, cp.pki.caPEM, token); err != nil {
		return "", err
	}
	return path, nil
}

// LogPath is the log file of a component (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok).
func (cp *ControlPlane) LogPath(component string) string {
	return cp.path(component + ".log")
}

// LogTails returns the last n bytes of every started component's log.
func (cp *ControlPlane) LogTails(n int64) string {
	var b strings.Builder
	for _, p := range cp.procs {
		fmt.Fprintf(&b, "--- %s log (%s) ends:\n%s\n", p.Name(), p.LogPath(), p.LogTail(n))
	}
	return b.String()
}

// Stop stops the components in reverse start order (SIGTERM, then SIGKILL
// after 10s), each by its own process group, and removes Dir if it was
// made by StartControlPlane. It is safe to call more than once.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() {
		var errs []error
		for i := len(cp.procs) - 1; i >= 0; i-- {
			if err := cp.procs[i].Stop(10 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
		if err := cp.removeDir(); err != nil {
			errs = append(errs, err)
		}
		cp.stopErr = errors.Join(errs...)
	})
	return cp.stopErr
}

func (cp *ControlPlane) removeDir() error {
	if !cp.ownsDir {
		return nil
	}
	if err := os.RemoveAll(cp.Dir); err != nil {
		return fmt.Errorf("remove %s: %w", cp.Dir, err)
	}
	return nil
}

func (cp *ControlPlane) path(name string) string { return filepath.Join(cp.Dir, name) }

// freePorts asks the kernel for n distinct free ports on 127.0.0.1. They are
// released before use, so another process could take one in between; the
// component then fails to start and says so in its log.
func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

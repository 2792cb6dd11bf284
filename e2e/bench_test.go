//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestBench deploys one throwaway stack with the fixture of the e2e suite and measures, in one run,
// how fast a registry it gives against the natural limits of the machine (issue 5): unit test suite
// wall time, deploy times, the data path (Ingress vs one pod vs the port-forward alone vs the
// disk), blob HEAD latency with the Redis cache warm vs disabled, and GC time and write pause for
// growing repository counts. Results: results/bench.{md,json,png}. See BENCH.md.
func TestBench(t *testing.T) {
	root, err := repoRootDir()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadBenchConfig(root)
	if err != nil {
		t.Fatalf("bench settings: %v", err)
	}
	f := newFixture(t)
	// A hostname of its own unless E2E_HOSTNAME says otherwise: the ingress controller routes by
	// host, and another run's stack (or its leftover namespace) on the default registry.e2e.test
	// would get some of this run's requests (seen: in-cluster requests answered 401 by another
	// run's registry).
	if os.Getenv("E2E_HOSTNAME") == "" {
		f.s.Hostname = f.s.Stack + ".bench.e2e.test"
	}
	b := &bench{f: f, cfg: cfg, res: &benchResults{Started: time.Now().UTC(), Config: cfg}}
	b.res.Machine = b.machineInfo(context.Background())
	if below := cfg.belowIssue(); len(below) > 0 {
		b.res.note("settings below the issue's numbers (development run): " + strings.Join(below, "; "))
	}
	// Registered after the fixture's teardown, so it runs before it: results are written while
	// the stack still exists, also when a part failed.
	t.Cleanup(func() { b.writeResults(t) })

	if cfg.Parts["unit"] {
		b.part(t, "unit", (*bench).benchUnit, false)
	}
	if cfg.Parts["deploy"] {
		b.part(t, "deploy", (*bench).benchDeploy, true)
	} else {
		b.part(t, "deploy_once", func(b *bench, t *testing.T) {
			if _, err := b.deployFresh(context.Background(), t, "up"); err != nil {
				t.Fatal(err)
			}
		}, true)
	}
	if cfg.Parts["data"] {
		b.part(t, "data", (*bench).benchData, false)
	}
	if cfg.Parts["head"] {
		b.part(t, "head", (*bench).benchHead, false)
	}
	if cfg.Parts["gc"] {
		b.part(t, "gc", (*bench).benchGC, false)
	}
}

// bench is the state of one TestBench run.
type bench struct {
	f   *fixture
	cfg *benchConfig
	res *benchResults

	firstPreview time.Duration // first pulumi command of the run (compiles the program)
}

// part runs one measured part as a subtest and records its outcome; a critical part that fails
// (the deployment) ends the run.
func (b *bench) part(t *testing.T, name string, fn func(b *bench, t *testing.T), critical bool) {
	start := time.Now()
	ok := t.Run(name, func(t *testing.T) { fn(b, t) })
	result := "ok"
	if !ok {
		result = "FAIL"
	}
	d := time.Since(start)
	b.f.report.step("bench_"+name, result, d)
	b.res.mu.Lock()
	b.res.Phases = append(b.res.Phases, phaseResult{Name: name, Result: result, Seconds: d.Seconds()})
	b.res.mu.Unlock()
	if !ok && critical {
		t.Fatalf("part %s failed and the other parts need it; tearing down", name)
	}
}

func repoRootDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working dir: %w", err)
	}
	root := wd[:max(0, strings.LastIndex(wd, string(os.PathSeparator)))]
	if _, err := os.Stat(root + "/Pulumi.yaml"); err != nil {
		return "", fmt.Errorf("the Pulumi program is not in %s: %w", root, err)
	}
	return root, nil
}

// benchStackConfig is the e2e stack config (2 replicas, cache on) with sizes that hold the
// benchmark's data (hostPath volumes do not enforce sizes; the values keep the objects honest).
func (b *bench) benchStackConfig() map[string]string {
	c := b.f.s.stackConfig()
	c["pvSize"] = "20Gi"
	c["pvcSize"] = "20Gi"
	c["replicas"] = "2"
	c["cacheEnabled"] = "true"
	// The program's CPU requests (the e2e suite lowers them to fit next to other jobs): they set
	// the pods' CPU share under contention, which a benchmark should not understate.
	delete(c, "registryCpuRequest")
	delete(c, "redisCpuRequest")
	return c
}

// machineInfo collects what the report states about the machine and the versions.
func (b *bench) machineInfo(ctx context.Context) machineInfo {
	m := machineInfo{
		Date:          time.Now().UTC().Format(time.RFC3339),
		NProc:         runtime.NumCPU(),
		GoVersion:     runtime.Version(),
		RegistryImage: b.f.s.RegistryImage,
		RedisImage:    b.f.s.RedisImage,
		IngressAddr:   b.f.s.IngressAddr,
	}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(data), "\n"); ok {
			m.MemTotal = strings.Join(strings.Fields(strings.TrimPrefix(l, "MemTotal:")), " ")
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	m.Filesystem = fsType(b.f.s.WorkDir)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := runCmd(cctx, b.f.repoRoot, nil, "pulumi", "version"); err == nil {
		m.PulumiVersion = strings.TrimSpace(out)
	}
	if out, err := runCmd(cctx, "", nil, "kubectl", "--context", b.f.s.KubeContext, "version", "-o", "json"); err == nil {
		var v struct {
			Client struct{ GitVersion string } `json:"clientVersion"`
			Server struct{ GitVersion string } `json:"serverVersion"`
		}
		if json.Unmarshal([]byte(out), &v) == nil {
			m.KubectlClient, m.KubeServer = v.Client.GitVersion, v.Server.GitVersion
		}
	}
	if ns, name, ok := strings.Cut(env("BENCH_INGRESS_DEPLOYMENT", "ingress/traefik"), "/"); ok {
		if out, err := runCmd(cctx, "", nil, "kubectl", "--context", b.f.s.KubeContext, "-n", ns, "get", "deployment", name,
			"-o", "jsonpath={.spec.template.spec.containers[0].image}"); err == nil {
			m.IngressImage = strings.TrimSpace(out)
		}
	}
	return m
}

// fsType names the filesystem holding dir (from /proc/mounts: the longest mount point prefix).
func fsType(dir string) string {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	best, typ := "", "unknown"
	for _, l := range strings.Split(string(data), "\n") {
		fs := strings.Fields(l)
		if len(fs) < 3 {
			continue
		}
		mp := fs[1]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ = mp, fs[2]+" ("+fs[0]+" on "+mp+")"
		}
	}
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) == nil {
		typ += fmt.Sprintf(", %.0f GiB free", float64(st.Bavail)*float64(st.Bsize)/(1<<30))
	}
	return typ
}

var forwardingPortsRE = regexp.MustCompile(`Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)`)

// portForwardPod starts `kubectl port-forward pod/<pod>` for the remote ports on free local ports
// and returns 127.0.0.1:<port> per remote port (same order) and a stop function that kills exactly
// that process.
func (k *kube) portForwardPod(ctx context.Context, pod string, remotePorts ...string) ([]string, func(), error) {
	args := []string{"--context", k.context, "-n", k.namespace, "port-forward", "--address", "127.0.0.1", "pod/" + pod}
	for _, p := range remotePorts {
		args = append(args, ":"+p)
	}
	cmd := exec.Command("kubectl", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, fmt.Errorf("port-forward pipe: %w", err)
	}
	stderr := &syncWriter{w: &strings.Builder{}}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start port-forward: %w", err)
	}
	stop := func() {
		_ = cmd.Process.Kill() // only the process started here; Wait reaps it
		_ = cmd.Wait()
	}
	found := make(chan [2]string, 2*len(remotePorts))
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := forwardingPortsRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- [2]string{m[2], m[1]}:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	local := map[string]string{}
	deadline := time.After(30 * time.Second)
	for len(local) < len(remotePorts) {
		select {
		case m := <-found:
			local[m[0]] = "127.0.0.1:" + m[1]
		case <-deadline:
			stop()
			return nil, nil, fmt.Errorf("port-forward to pod/%s %v did not start in 30s: %s", pod, remotePorts, stderr.String())
		case <-ctx.Done():
			stop()
			return nil, nil, ctx.Err()
		}
	}
	addrs := make([]string, len(remotePorts))
	for i, p := range remotePorts {
		if addrs[i] = local[p]; addrs[i] == "" {
			stop()
			return nil, nil, fmt.Errorf("port-forward to pod/%s: no local port for %s", pod, p)
		}
	}
	return addrs, stop, nil
}

// syncWriter serialises writes and reads of kubectl's stderr (written by exec's copying goroutine).
type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// newDirectClient is a registry client for one pod reached through a port-forward: plain HTTP to
// exactly addr (127.0.0.1:port), the stack's credentials. Dials anywhere else are refused.
func newDirectClient(addr, user, pass string) (*registryClient, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return nil, fmt.Errorf("direct client: %q is not a 127.0.0.1 address", addr)
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
			if a != addr {
				return nil, fmt.Errorf("refusing to dial %s: only %s (the port-forward) is allowed", a, addr)
			}
			return dialer.DialContext(ctx, network, a)
		},
		ResponseHeaderTimeout: 2 * time.Minute,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
	}
	base, err := url.Parse("http://" + addr)
	if err != nil {
		return nil, fmt.Errorf("direct client url: %w", err)
	}
	return &registryClient{base: base, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}, user: user, pass: pass, chunkSize: 512 << 10}, nil
}

// newIngressClient is a fresh client through the Ingress (own connection pool), as in the e2e suite.
func (b *bench) newIngressClient() (*registryClient, error) {
	hc, err := newHTTPClient(b.f.s.Hostname, b.f.ingressAddr, []byte(b.f.out.CACertPEM))
	if err != nil {
		return nil, err
	}
	hc.Timeout = 10 * time.Minute
	return newRegistryClient(hc, b.f.s.Hostname, b.f.out.Username, b.f.out.Password)
}

// directToPod port-forwards to the first Ready registry pod and returns a client for it.
func (b *bench) directToPod(ctx context.Context) (*registryClient, string, func(), error) {
	pods, err := b.f.kube.pods(ctx, registryPodSelector)
	if err != nil {
		return nil, "", nil, err
	}
	pod := ""
	for _, p := range pods {
		if p.Ready && !p.Deleted {
			pod = p.Name
			break
		}
	}
	if pod == "" {
		return nil, "", nil, fmt.Errorf("no Ready registry pod among %+v", pods)
	}
	addrs, stop, err := b.f.kube.portForwardPod(ctx, pod, "5000")
	if err != nil {
		return nil, "", nil, err
	}
	c, err := newDirectClient(addrs[0], b.f.out.Username, b.f.out.Password)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	// The forward is up once /v2/ answers with the credentials.
	err = poll(ctx, 30*time.Second, 500*time.Millisecond, func() (bool, error) {
		code, err := c.ping(ctx, false, "", "")
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("pod %s via %s: /v2/ never answered 200: %w", pod, addrs[0], err)
	}
	return c, pod, stop, nil
}

//go:build e2e

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// TestMain refuses to run without the tools and a reachable cluster, like the e2e suite: a
// benchmark that silently skips would write no results and report success.
func TestMain(m *testing.M) { kit.Main(m, "bench") }

// TestBench deploys one throwaway stack with the fixture of the e2e suite and measures, in one run,
// how fast a registry it gives against the natural limits of the machine (issue 5): unit test suite
// wall time, deploy times, the data path (Ingress vs one pod vs the port-forward alone vs the
// disk), blob HEAD latency with the Redis cache warm vs disabled, and GC time and write pause for
// growing repository counts. Results: results/bench.{md,json,png}. See BENCH.md.
func TestBench(t *testing.T) {
	root, err := kit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadBenchConfig(root)
	if err != nil {
		t.Fatalf("bench settings: %v", err)
	}
	f := kit.NewFixture(t)
	// A hostname of its own unless E2E_HOSTNAME says otherwise: the ingress controller routes by
	// host, and another run's stack (or its leftover namespace) on the default registry.e2e.test
	// would get some of this run's requests (seen: in-cluster requests answered 401 by another
	// run's registry).
	if os.Getenv("E2E_HOSTNAME") == "" {
		f.Settings.Hostname = f.Settings.Stack + ".bench.e2e.test"
	}
	b := &bench{f: f, cfg: cfg, res: &benchResults{Started: time.Now().UTC(), Config: cfg}}
	b.res.Machine = b.machineInfo(context.Background())
	if below := cfg.belowIssue(); len(below) > 0 {
		b.res.note("settings below the issue's numbers (development run): " + strings.Join(below, "; "))
	}
	// Registered after the fixture's teardown, so it runs before it: results are written while
	// the stack still exists, also when a part failed.
	t.Cleanup(func() { b.writeResults(t) })

	// The parts run as the fixture's steps; a critical part that fails (the deployment) ends the run.
	var parts []kit.Step
	if cfg.Parts["unit"] {
		parts = append(parts, kit.Step{Name: "unit", Run: b.benchUnit})
	}
	if cfg.Parts["deploy"] {
		parts = append(parts, kit.Step{Name: "deploy", Run: b.benchDeploy, Critical: true})
	} else {
		parts = append(parts, kit.Step{Name: "deploy_once", Critical: true, Run: func(t *testing.T) {
			if _, err := b.deployFresh(context.Background(), t, "up"); err != nil {
				t.Fatal(err)
			}
		}})
	}
	if cfg.Parts["data"] {
		parts = append(parts, kit.Step{Name: "data", Run: b.benchData})
	}
	if cfg.Parts["head"] {
		parts = append(parts, kit.Step{Name: "head", Run: b.benchHead})
	}
	if cfg.Parts["gc"] {
		parts = append(parts, kit.Step{Name: "gc", Run: b.benchGC})
	}
	if cfg.Parts["retention"] {
		parts = append(parts, kit.Step{Name: "retention", Run: b.benchRetention})
	}
	if cfg.Parts["token"] {
		parts = append(parts, kit.Step{Name: "token", Run: b.benchToken})
	}
	if cfg.Parts["mirror"] {
		parts = append(parts, kit.Step{Name: "mirror", Run: b.benchMirror})
	}
	if cfg.Parts["s3"] {
		// Last: it moves the stack to the s3 driver.
		parts = append(parts, kit.Step{Name: "s3", Run: b.benchS3})
	}
	f.RunSteps(t, parts)
}

// bench is the state of one TestBench run.
type bench struct {
	f   *kit.Fixture
	cfg *benchConfig
	res *benchResults

	firstPreview time.Duration // first pulumi command of the run (compiles the program)
	// storeCA is the S3 fixture's CA once the s3 part switched the stack to it (benchpod trusts
	// it to follow redirects to the store).
	storeCA string
}

// benchStackConfig is the e2e stack config (2 replicas, cache on) with sizes that hold the
// benchmark's data (hostPath volumes do not enforce sizes; the values keep the objects honest).
func (b *bench) benchStackConfig() map[string]string {
	c := b.f.Settings.StackConfig()
	c["storage.filesystem.pvSize"] = "20Gi"
	c["storage.filesystem.pvcSize"] = "20Gi"
	c["replicas"] = "2"
	c["cache.enabled"] = "true"
	// The program's CPU requests (the e2e suite lowers them to fit next to other jobs): they set
	// the pods' CPU share under contention, which a benchmark should not understate.
	delete(c, "registry.cpuRequest")
	delete(c, "cache.cpuRequest")
	return c
}

// machineInfo collects what the report states about the machine and the versions.
func (b *bench) machineInfo(ctx context.Context) machineInfo {
	m := machineInfo{
		Date:          time.Now().UTC().Format(time.RFC3339),
		NProc:         runtime.NumCPU(),
		GoVersion:     runtime.Version(),
		RegistryImage: b.f.Settings.RegistryImage,
		RedisImage:    b.f.Settings.RedisImage,
		IngressAddr:   b.f.Settings.IngressAddr,
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
	m.Filesystem = fsType(b.f.Settings.WorkDir)
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := kit.RunCmd(cctx, b.f.RepoRoot, nil, "pulumi", "version"); err == nil {
		m.PulumiVersion = strings.TrimSpace(out)
	}
	if out, err := kit.RunCmd(cctx, "", nil, "kubectl", "--context", b.f.Settings.KubeContext, "version", "-o", "json"); err == nil {
		var v struct {
			Client struct{ GitVersion string } `json:"clientVersion"`
			Server struct{ GitVersion string } `json:"serverVersion"`
		}
		if json.Unmarshal([]byte(out), &v) == nil {
			m.KubectlClient, m.KubeServer = v.Client.GitVersion, v.Server.GitVersion
		}
	}
	if ns, name, ok := strings.Cut(kit.Env("BENCH_INGRESS_DEPLOYMENT", "ingress/traefik"), "/"); ok {
		if out, err := kit.RunCmd(cctx, "", nil, "kubectl", "--context", b.f.Settings.KubeContext, "-n", ns, "get", "deployment", name,
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

// newDirectClient is a registry client for one pod reached through a port-forward: plain HTTP to
// exactly addr (127.0.0.1:port), the stack's credentials. Dials anywhere else are refused.
func newDirectClient(addr, user, pass string) (*kit.RegistryClient, error) {
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
	return kit.NewRegistryClient(&http.Client{Transport: tr, Timeout: 10 * time.Minute}, "http://"+addr, user, pass)
}

// newIngressClient is a fresh client through the Ingress (own connection pool), as in the e2e suite.
func (b *bench) newIngressClient() (*kit.RegistryClient, error) {
	hc, err := kit.NewHTTPClient(b.f.Settings.Hostname, b.f.IngressAddr, []byte(b.f.Out.CACertPEM))
	if err != nil {
		return nil, err
	}
	hc.Timeout = 10 * time.Minute
	return kit.NewRegistryClient(hc, "https://"+b.f.Settings.Hostname, b.f.Out.Username, b.f.Out.Password)
}

// directToPod port-forwards to the first Ready registry pod and returns a client for it.
func (b *bench) directToPod(ctx context.Context) (*kit.RegistryClient, string, func(), error) {
	pods, err := b.f.Kube.Pods(ctx, kit.RegistryPodSelector)
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
	addrs, stop, err := b.f.Kube.PortForward(ctx, b.f.Settings.Namespace, "pod/"+pod, "5000")
	if err != nil {
		return nil, "", nil, err
	}
	c, err := newDirectClient(addrs[0], b.f.Out.Username, b.f.Out.Password)
	if err != nil {
		stop()
		return nil, "", nil, err
	}
	// The forward is up once /v2/ answers with the credentials.
	err = kit.Poll(ctx, 30*time.Second, 500*time.Millisecond, func() (bool, error) {
		code, err := c.Ping(ctx, false, "", "")
		return err == nil && code == http.StatusOK, nil
	})
	if err != nil {
		stop()
		return nil, "", nil, fmt.Errorf("pod %s via %s: /v2/ never answered 200: %w", pod, addrs[0], err)
	}
	return c, pod, stop, nil
}

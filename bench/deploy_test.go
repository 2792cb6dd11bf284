//go:build e2e

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Metrics of the deploy part, in the order of the report.
var deployMetrics = []struct{ Key, Label string }{
	{"up", "`pulumi up`, empty namespace → stack created"},
	{"up_ready", "… → all pods Ready (registry ×2, Redis, PVC Bound)"},
	{"up_serving", "… → Ingress answers `/v2/` (401) with the stack's certificate"},
	{"preview_noop", "no-op `pulumi preview --expect-no-changes`"},
	{"scale_up", "`pulumi up` replicas 2 → 3"},
	{"scale_up_ready", "… → 3 pods Ready"},
	{"scale_down", "`pulumi up` replicas 3 → 2"},
	{"scale_down_ready", "… → 2 pods Ready, none terminating"},
	{"destroy", "`pulumi destroy`"},
}

// deployTimes are the durations of one deployment from an empty namespace, all from the start of
// `pulumi up` (the `stack output` call in between is not counted).
type deployTimes struct{ Up, Ready, Serving time.Duration }

// deployFresh creates the stack on first use and deploys it into a namespace that does not exist
// yet; it leaves f.Out, f.Client and the fixture's cleanup state consistent.
func (b *bench) deployFresh(ctx context.Context, t *testing.T, label string) (*deployTimes, error) {
	f := b.f
	if !f.StackCreated {
		if err := f.Pulumi.InitStack(ctx); err != nil {
			return nil, err
		}
		f.StackCreated = true
		if err := f.Pulumi.SetConfig(ctx, b.benchStackConfig()); err != nil {
			return nil, err
		}
		// The first pulumi command compiles the program (language host); that is not a deploy cost
		// a user pays on every run, so it is measured apart.
		start := time.Now()
		if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "bench-first-preview", "preview"); err != nil {
			return nil, fmt.Errorf("first pulumi preview: %w", err)
		}
		b.firstPreview = time.Since(start)
		t.Logf("first pulumi preview (compiles the program): %s", b.firstPreview.Round(100*time.Millisecond))
	}
	start := time.Now()
	ops, err := f.Pulumi.Up(ctx, label)
	up := time.Since(start)
	f.Destroyed = false // whatever up created must be destroyed at the end
	if err != nil {
		return nil, fmt.Errorf("pulumi up: %w\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	if err := f.LoadOutputs(ctx); err != nil {
		return nil, err
	}
	wr := time.Now()
	if err := f.WaitReady(ctx, 2); err != nil {
		return nil, fmt.Errorf("%w\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	ready := up + time.Since(wr)
	cs := time.Now()
	if err := f.Connect(ctx, t); err != nil {
		return nil, err
	}
	serving := ready + time.Since(cs)
	t.Logf("%s: pulumi up %s (%s), Ready after %s, serving after %s", label, up.Round(100*time.Millisecond),
		kit.SummarizeOps(ops), ready.Round(100*time.Millisecond), serving.Round(100*time.Millisecond))
	return &deployTimes{Up: up, Ready: ready, Serving: serving}, nil
}

// benchDeploy runs DeployRuns cycles of: up from an empty namespace, no-op preview, replicas 2→3
// and 3→2, and (except after the last) destroy plus removal of the retained volume and its data,
// so that every cycle starts from nothing. The last cycle leaves the stack deployed (2 replicas,
// cache on) for the other parts.
func (b *bench) benchDeploy(t *testing.T) {
	ctx := context.Background()
	f := b.f
	res := &deployResult{Samples: map[string][]float64{}}
	b.res.mu.Lock()
	b.res.Deploy = res
	b.res.mu.Unlock()
	add := func(k string, d time.Duration) {
		b.res.mu.Lock()
		defer b.res.mu.Unlock()
		res.Samples[k] = append(res.Samples[k], d.Seconds())
	}
	timedUp := func(label string, replicas int) (time.Duration, time.Duration, error) {
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"replicas": fmt.Sprint(replicas)}); err != nil {
			return 0, 0, err
		}
		start := time.Now()
		ops, err := f.Pulumi.Up(ctx, label)
		up := time.Since(start)
		if err != nil {
			return 0, 0, err
		}
		for _, o := range ops {
			if !kit.InPlaceOps[o.Op] {
				return 0, 0, fmt.Errorf("%s: replicas change did more than in-place updates: %s", label, kit.SummarizeOps(ops))
			}
		}
		if err := f.WaitReady(ctx, replicas); err != nil {
			return 0, 0, err
		}
		return up, time.Since(start), nil
	}
	for i := 1; i <= b.cfg.DeployRuns; i++ {
		dt, err := b.deployFresh(ctx, t, fmt.Sprintf("bench-up-%d", i))
		if err != nil {
			t.Fatalf("deploy %d: %v", i, err)
		}
		res.FirstPreviewSec = b.firstPreview.Seconds()
		add("up", dt.Up)
		add("up_ready", dt.Ready)
		add("up_serving", dt.Serving)

		start := time.Now()
		if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, fmt.Sprintf("bench-preview-noop-%d", i), "preview", "--expect-no-changes"); err != nil {
			t.Fatalf("no-op preview %d: %v", i, err)
		}
		add("preview_noop", time.Since(start))

		up, ready, err := timedUp(fmt.Sprintf("bench-scale-up-%d", i), 3)
		if err != nil {
			t.Fatalf("replicas 2 -> 3 (%d): %v", i, err)
		}
		add("scale_up", up)
		add("scale_up_ready", ready)
		up, ready, err = timedUp(fmt.Sprintf("bench-scale-down-%d", i), 2)
		if err != nil {
			t.Fatalf("replicas 3 -> 2 (%d): %v", i, err)
		}
		add("scale_down", up)
		add("scale_down_ready", ready)

		if i < b.cfg.DeployRuns {
			d, err := b.destroyForRedeploy(ctx, t)
			if err != nil {
				t.Fatalf("destroy %d: %v", i, err)
			}
			add("destroy", d)
		}
	}
}

// destroyForRedeploy destroys the stack (keeping it in the backend), waits until the namespace is
// gone, deletes the retained PersistentVolume and the hostPath data, so the next up starts empty.
func (b *bench) destroyForRedeploy(ctx context.Context, t *testing.T) (time.Duration, error) {
	f := b.f
	start := time.Now()
	if _, err := f.Pulumi.RunLong(ctx, kit.DestroyTimeout, "bench-destroy", "destroy", "--yes", "--skip-preview"); err != nil {
		return 0, err
	}
	d := time.Since(start)
	f.Destroyed = true
	err := kit.Poll(ctx, kit.NamespaceGoneTimeout, time.Second, func() (bool, error) {
		_, err := f.Kube.Run(ctx, false, "get", "namespace", f.Settings.Namespace)
		if kit.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return 0, fmt.Errorf("namespace %s still there after destroy: %w", f.Settings.Namespace, err)
	}
	for _, pv := range f.LeftoverPVs(ctx, t) {
		if _, err := f.Kube.Run(ctx, false, "delete", "pv", pv, "--ignore-not-found", "--wait=true"); err != nil {
			return 0, fmt.Errorf("delete pv %s: %w", pv, err)
		}
	}
	if f.Settings.StorageMode == "hostPath" {
		if !strings.HasPrefix(f.Settings.HostPath, f.Settings.WorkDir+string(filepath.Separator)) {
			return 0, fmt.Errorf("E2E_STORAGE_HOST_PATH=%s is outside the work dir: the bench does not delete it, and the next deploy would reuse its data", f.Settings.HostPath)
		}
		if err := os.RemoveAll(f.Settings.HostPath); err != nil {
			return 0, fmt.Errorf("remove hostPath data %s: %w", f.Settings.HostPath, err)
		}
	}
	t.Logf("destroyed in %s; namespace, PV and data removed", d.Round(100*time.Millisecond))
	return d, nil
}

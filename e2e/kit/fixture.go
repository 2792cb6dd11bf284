//go:build e2e

package kit

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Fixture is the one deployment a run shares (the steps of the suite, the parts of the bench):
// deploying is expensive, so it happens once and the steps run in order against it.
type Fixture struct {
	// Track names a deployment of its own whose steps run beside the main one ("": the main
	// deployment); see NewTrackFixture.
	Track    string
	Settings *Settings
	RepoRoot string
	Pulumi   *PulumiCLI
	Kube     *Kube
	Report   *Report

	StackCreated bool // the stack exists in the backend: destroy must be attempted at the end
	Destroyed    bool
	// PlatformGateway: the existing-Gateway fixture namespace exists and teardown must delete it.
	PlatformGateway bool

	Out StackOutputs
	// FixtureNamespaces hold test fixtures (an S3 store, ...) that teardown deletes.
	FixtureNamespaces []string
	// ClusterFixtures are cluster-scoped fixtures (kind/name, e.g. priorityclass/x) that teardown
	// deletes after the stack.
	ClusterFixtures []string

	IngressAddr string
	stopPF      func() // stops the port-forward this suite started, if any
	Client      *RegistryClient
}

// StackOutputs are the stack outputs the suite uses.
type StackOutputs struct {
	URL, Hostname, Namespace, Username, Password, CACertPEM         string
	DeploymentName, ServiceName, GCCronJobName, RedisDeploymentName string
	GCWatchdogCronJobName                                           string
	ClaimName, VolumeName                                           string
	// Storage describes the storage driver (output storage).
	Storage                string
	TLSSecretName, Routing string
	// Passwords maps every account (username first, then the other accounts) to its password.
	Passwords map[string]string
}

// RegistryPodSelector selects the registry's pods, RedisPodSelector the Redis pod (contract:
// component label + part-of).
const (
	RegistryPodSelector = "app.kubernetes.io/component=registry,app.kubernetes.io/part-of=registry-stack"
	RedisPodSelector    = "app.kubernetes.io/component=cache,app.kubernetes.io/part-of=registry-stack"
)

// NewFixture prepares the work dir, the pulumi and kubectl wrappers, and registers the teardown
// that destroys whatever was deployed, deletes the retained PV and the temp dirs, and prints the
// summary — also when a step failed or the test panicked.
func NewFixture(t *testing.T) *Fixture {
	t.Helper()
	return NewTrackFixture(t, "")
}

// NewTrackFixture is NewFixture for a track: steps that need a deployment of their own state
// (GC killed on purpose, an autoscaler under load) and mostly wait (leases, schedules,
// metrics-server), so they run on a second deployment beside the main one instead of after it.
// The track's stack, namespace, hostname (<track>.<E2E_HOSTNAME>), work and log dirs are its own.
func NewTrackFixture(t *testing.T, track string) *Fixture {
	t.Helper()
	ctx := context.Background()
	s, err := loadSettings(ctx, track)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPulumiCLI(root, s.WorkDir, s.LogDir, s.Stack)
	if err != nil {
		t.Fatalf("pulumi: %v", err)
	}
	f := &Fixture{Track: track, Settings: s, RepoRoot: root, Pulumi: p, Kube: &Kube{context: s.KubeContext, namespace: s.Namespace}, Report: &Report{}}

	// Cleanups run last-registered-first: the summary is registered first so it prints after teardown.
	t.Cleanup(func() {
		fmt.Printf("\n===== E2E SUMMARY (track %s, stack %s, namespace %s, context %s, ingress %s) =====\n%s=====\n",
			cmp.Or(track, "main"), s.Stack, s.Namespace, s.KubeContext, f.IngressAddr, f.Report)
	})
	t.Cleanup(func() { f.teardown(t) })

	t.Logf("stack %s, namespace %s, context %s, storage %s (%s)", s.Stack, s.Namespace, s.KubeContext, s.StorageMode, s.HostPath)
	t.Logf("work dir %s (backend + stack config), logs %s", s.WorkDir, s.LogDir)
	return f
}

// RepoRoot returns the repository root, where the Pulumi program is: the parent of the directory
// the tests run in (go test runs them in their package's directory, e2e/ or bench/).
func RepoRoot() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	if _, err := os.Stat(filepath.Join(root, "Pulumi.yaml")); err != nil {
		return "", fmt.Errorf("the Pulumi program is not in %s: %w", root, err)
	}
	return root, nil
}

// Step is one ordered part of a run. Critical steps stop the run when they fail, because
// everything after them depends on their result.
type Step struct {
	Name     string
	Run      func(t *testing.T)
	Critical bool
}

// RunSteps runs the steps in order as subtests, timing each; the report keeps every outcome.
// E2E_STEPS (comma-separated step names) runs only those, for working on a few steps: the steps
// they depend on (deploy first) must be in the list. A track runs only when the list names one of
// its steps other than its critical ones and destroy (otherwise it would deploy for nothing).
func (f *Fixture) RunSteps(t *testing.T, steps []Step) {
	only := map[string]bool{}
	for _, name := range strings.Split(Env("E2E_STEPS", ""), ",") {
		if name = strings.TrimSpace(name); name != "" {
			only[name] = true
		}
	}
	if f.Track != "" && len(only) > 0 && !slices.ContainsFunc(steps, func(st Step) bool {
		return only[st.Name] && !st.Critical && st.Name != "destroy"
	}) {
		t.Skipf("E2E_STEPS names none of track %s's own steps", f.Track)
	}
	for _, st := range steps {
		if len(only) > 0 && !only[st.Name] {
			continue
		}
		start := time.Now()
		ok := t.Run(st.Name, st.Run)
		result := "ok"
		if !ok {
			result = "FAIL"
		}
		f.Report.step(st.Name, result, time.Since(start))
		timed := st.Name
		if f.Track != "" {
			timed = f.Track + "/" + st.Name
		}
		if err := appendTiming(timed, result, time.Since(start)); err != nil {
			t.Logf("E2E_TIMINGS: %v", err)
		}
		if !ok && st.Critical {
			t.Fatalf("step %s failed and the remaining steps depend on it; tearing down", st.Name)
		}
	}
}

// appendTiming adds one step's line (name, result, seconds; tab-separated) to the file that
// E2E_TIMINGS names, if any: .ci/run prints the steps slowest first at its end. Written after each
// step, so a run that dies still leaves what it measured.
func appendTiming(name, result string, d time.Duration) error {
	path := Env("E2E_TIMINGS", "")
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := fmt.Fprintf(f, "%s\t%s\t%.1f\n", name, result, d.Seconds()); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// Timed runs fn and records its duration in the report.
func (f *Fixture) Timed(name string, fn func() (note string, err error)) error {
	start := time.Now()
	note, err := fn()
	d := time.Since(start)
	if err != nil {
		note = strings.TrimSpace(note + " FAILED")
	}
	f.Report.timing(name, d, note)
	return err
}

// TimedUp runs `pulumi up` (its logs named after label, extra flags such as --replace) and
// records it in the report as name, with the operations it performed as the note.
func (f *Fixture) TimedUp(ctx context.Context, name, label string, extra ...string) ([]StepOp, error) {
	var ops []StepOp
	err := f.Timed(name, func() (string, error) {
		var err error
		ops, err = f.Pulumi.Up(ctx, label, extra...)
		return SummarizeOps(ops), err
	})
	return ops, err
}

// teardown destroys the stack if a step did not, deletes the PV the stack retains on purpose,
// removes the stack and the temp dirs. Errors are logged, not fatal: everything is attempted.
func (f *Fixture) teardown(t *testing.T) {
	ctx := context.Background()
	if f.stopPF != nil {
		f.stopPF()
	}
	if f.Settings.Keep && t.Failed() {
		t.Logf("E2E_KEEP=1 and the run failed: keeping everything. Inspect with:\n"+
			"  export PULUMI_BACKEND_URL=file://%s PULUMI_CONFIG_PASSPHRASE=%s\n"+
			"  (cd %s && pulumi stack output --stack %s --config-file %s)\n"+
			"  kubectl --context %s -n %s get all\n"+
			"Clean up with: pulumi destroy --yes ... ; kubectl delete pv %s-registry-data; rm -rf %s",
			f.Pulumi.BackendDir, testPassphrase, f.RepoRoot, f.Settings.Stack, f.Pulumi.ConfigFile,
			f.Settings.KubeContext, f.Settings.Namespace, f.Settings.Namespace, f.Settings.WorkDir)
		return
	}
	if f.StackCreated && !f.Destroyed {
		t.Logf("teardown: the suite did not reach its destroy step; running pulumi destroy")
		if _, err := f.Pulumi.RunLong(ctx, DestroyTimeout, "teardown-destroy", "destroy", "--yes", "--skip-preview"); err != nil {
			t.Errorf("teardown: pulumi destroy failed: %v", err)
			// Last resort so the cluster is not left with the namespace: delete it directly.
			if _, err := f.Kube.Run(ctx, false, "delete", "namespace", f.Settings.Namespace, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("teardown: delete namespace %s: %v", f.Settings.Namespace, err)
			}
		} else {
			f.Destroyed = true
		}
	}
	f.DeletePlatformNamespace(ctx, t)
	for _, ns := range f.FixtureNamespaces {
		if _, err := f.Kube.Run(ctx, false, "delete", "namespace", ns, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("teardown: delete fixture namespace %s: %v", ns, err)
		}
	}
	for _, obj := range f.ClusterFixtures {
		if _, err := f.Kube.Run(ctx, false, "delete", obj, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("teardown: delete %s: %v", obj, err)
		}
	}
	for _, pv := range f.LeftoverPVs(ctx, t) {
		if _, err := f.Kube.Run(ctx, false, "delete", "pv", pv, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("teardown: delete pv %s: %v", pv, err)
		} else {
			t.Logf("teardown: deleted retained PersistentVolume %s", pv)
		}
	}
	if f.StackCreated {
		if _, err := f.Pulumi.Run(ctx, 2*time.Minute, false, "stack", "rm", "--yes", "--force", "--preserve-config"); err != nil {
			t.Errorf("teardown: pulumi stack rm: %v", err)
		}
	}
	if !strings.HasPrefix(f.Settings.HostPath, f.Settings.WorkDir+string(filepath.Separator)) && f.Settings.StorageMode == "hostPath" {
		t.Logf("teardown: E2E_STORAGE_HOST_PATH=%s is outside the work dir; remove it on the node by hand", f.Settings.HostPath)
	}
	if err := os.RemoveAll(f.Settings.WorkDir); err != nil {
		t.Errorf("teardown: remove %s: %v", f.Settings.WorkDir, err)
	} else {
		t.Logf("teardown: removed %s (file backend, stack config, hostPath data)", f.Settings.WorkDir)
	}
}

// LeftoverPVs lists the PersistentVolumes that belong to this run: the stack's named volume and any
// volume whose claim was in the test namespace (dynamic mode).
func (f *Fixture) LeftoverPVs(ctx context.Context, t *testing.T) []string {
	var list struct {
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				ClaimRef *struct {
					Namespace string `json:"namespace"`
				} `json:"claimRef"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, false, &list, "pv"); err != nil {
		t.Errorf("teardown: list PersistentVolumes: %v", err)
		return nil
	}
	want := map[string]bool{f.Settings.Namespace + "-registry-data": true}
	if f.Out.VolumeName != "" {
		want[f.Out.VolumeName] = true
	}
	var names []string
	for _, pv := range list.Items {
		if want[pv.Metadata.Name] || (pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == f.Settings.Namespace) {
			names = append(names, pv.Metadata.Name)
		}
	}
	return names
}

// PlatformNamespace is the namespace of the existing-Gateway fixture.
func (f *Fixture) PlatformNamespace() string { return f.Settings.Namespace + "-platform" }

// DeletePlatformNamespace removes the existing-Gateway fixture (also done by teardown).
func (f *Fixture) DeletePlatformNamespace(ctx context.Context, t *testing.T) {
	if !f.PlatformGateway {
		return
	}
	if _, err := f.Kube.Run(ctx, false, "delete", "namespace", f.PlatformNamespace(), "--ignore-not-found", "--wait=false"); err != nil {
		t.Logf("delete namespace %s: %v", f.PlatformNamespace(), err)
		return
	}
	f.PlatformGateway = false
}

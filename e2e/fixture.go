//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is the one deployment every step of the suite shares: deploying is expensive, so it
// happens once and the steps run in order against it. Steps record what later steps need (images
// that must survive, upload sessions to find in the logs) in its fields.
type fixture struct {
	s        *settings
	repoRoot string
	pulumi   *pulumiCLI
	kube     *kube
	report   *report

	stackCreated bool // the stack exists in the backend: destroy must be attempted at the end
	destroyed    bool
	// platformGateway: the existing-Gateway fixture namespace exists and teardown must delete it.
	platformGateway bool

	out         stackOutputs
	ingressAddr string
	stopPF      func() // stops the port-forward this suite started, if any
	client      *registryClient

	imgKeep   *testImage     // pushed first; stays; pulled in a loop during GC
	imgDrop   *testImage     // deleted before the second GC, pushed again after it
	survivors []*testImage   // every acknowledged image that must still pull later
	uploads   []uploadRecord // upload sessions of the pushes, to find in the registry logs

	// retired are secrets the rotation steps replaced (name -> value): like the current ones they
	// must never appear in plain text in the state, logs, outputs or ConfigMaps.
	retired map[string]string
}

// stackOutputs are the stack outputs the suite uses.
type stackOutputs struct {
	URL, Hostname, Namespace, Username, Password, CACertPEM         string
	DeploymentName, ServiceName, GCCronJobName, RedisDeploymentName string
	ClaimName, VolumeName                                           string
	TLSSecretName, Routing                                          string
	// Passwords maps every account (username first, then extraAccounts) to its password.
	Passwords map[string]string
}

// registryPods selects the registry's pods (contract: component label + part-of).
const (
	registryPodSelector = "app.kubernetes.io/component=registry,app.kubernetes.io/part-of=registry-stack"
	redisPodSelector    = "app.kubernetes.io/component=cache,app.kubernetes.io/part-of=registry-stack"
)

// newFixture prepares the work dir, the pulumi and kubectl wrappers, and registers the teardown
// that destroys whatever was deployed, deletes the retained PV and the temp dirs, and prints the
// summary — also when a step failed or the test panicked.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	s, err := loadSettings(ctx)
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "Pulumi.yaml")); err != nil {
		t.Fatalf("the Pulumi program is not in %s: %v", root, err)
	}
	p, err := newPulumiCLI(root, s.WorkDir, s.LogDir, s.Stack)
	if err != nil {
		t.Fatalf("pulumi: %v", err)
	}
	f := &fixture{s: s, repoRoot: root, pulumi: p, kube: &kube{context: s.KubeContext, namespace: s.Namespace}, report: &report{}}

	// Cleanups run last-registered-first: the summary is registered first so it prints after teardown.
	t.Cleanup(func() {
		fmt.Printf("\n===== E2E SUMMARY (stack %s, namespace %s, context %s, ingress %s) =====\n%s=====\n",
			s.Stack, s.Namespace, s.KubeContext, f.ingressAddr, f.report)
	})
	t.Cleanup(func() { f.teardown(t) })

	t.Logf("stack %s, namespace %s, context %s, storage %s (%s)", s.Stack, s.Namespace, s.KubeContext, s.StorageMode, s.HostPath)
	t.Logf("work dir %s (backend + stack config), logs %s", s.WorkDir, s.LogDir)
	return f
}

// step is one ordered part of the suite. critical steps stop the run when they fail, because
// everything after them depends on their result.
type step struct {
	name     string
	run      func(f *fixture, t *testing.T)
	critical bool
}

// runSteps runs the steps in order as subtests, timing each.
func (f *fixture) runSteps(t *testing.T, steps []step) {
	for _, st := range steps {
		start := time.Now()
		ok := t.Run(st.name, func(t *testing.T) { st.run(f, t) })
		result := "ok"
		if !ok {
			result = "FAIL"
		}
		f.report.step(st.name, result, time.Since(start))
		if !ok && st.critical {
			t.Fatalf("step %s failed and the remaining steps depend on it; tearing down", st.name)
		}
	}
}

// need skips a step whose prerequisite (set by an earlier, failed step) is missing.
func need(t *testing.T, ok bool, what string) {
	t.Helper()
	if !ok {
		t.Skipf("skipped: %s is missing (an earlier step failed)", what)
	}
}

// timed runs fn and records its duration in the report.
func (f *fixture) timed(name string, fn func() (note string, err error)) error {
	start := time.Now()
	note, err := fn()
	d := time.Since(start)
	if err != nil {
		note = strings.TrimSpace(note + " FAILED")
	}
	f.report.timing(name, d, note)
	return err
}

// teardown destroys the stack if a step did not, deletes the PV the stack retains on purpose,
// removes the stack and the temp dirs. Errors are logged, not fatal: everything is attempted.
func (f *fixture) teardown(t *testing.T) {
	ctx := context.Background()
	if f.stopPF != nil {
		f.stopPF()
	}
	if f.s.Keep && t.Failed() {
		t.Logf("E2E_KEEP=1 and the run failed: keeping everything. Inspect with:\n"+
			"  export PULUMI_BACKEND_URL=file://%s PULUMI_CONFIG_PASSPHRASE=%s\n"+
			"  (cd %s && pulumi stack output --stack %s --config-file %s)\n"+
			"  kubectl --context %s -n %s get all\n"+
			"Clean up with: pulumi destroy --yes ... ; kubectl delete pv %s-registry-data; rm -rf %s",
			f.pulumi.backendDir, testPassphrase, f.repoRoot, f.s.Stack, f.pulumi.configFile,
			f.s.KubeContext, f.s.Namespace, f.s.Namespace, f.s.WorkDir)
		return
	}
	if f.stackCreated && !f.destroyed {
		t.Logf("teardown: the suite did not reach its destroy step; running pulumi destroy")
		if _, err := f.pulumi.runLong(ctx, destroyTimeout, "teardown-destroy", "destroy", "--yes", "--skip-preview"); err != nil {
			t.Errorf("teardown: pulumi destroy failed: %v", err)
			// Last resort so the cluster is not left with the namespace: delete it directly.
			if _, err := f.kube.run(ctx, false, "delete", "namespace", f.s.Namespace, "--ignore-not-found", "--wait=false"); err != nil {
				t.Errorf("teardown: delete namespace %s: %v", f.s.Namespace, err)
			}
		} else {
			f.destroyed = true
		}
	}
	f.deletePlatformNamespace(ctx, t)
	for _, pv := range f.leftoverPVs(ctx, t) {
		if _, err := f.kube.run(ctx, false, "delete", "pv", pv, "--ignore-not-found", "--wait=false"); err != nil {
			t.Errorf("teardown: delete pv %s: %v", pv, err)
		} else {
			t.Logf("teardown: deleted retained PersistentVolume %s", pv)
		}
	}
	if f.stackCreated {
		if _, err := f.pulumi.run(ctx, 2*time.Minute, false, "stack", "rm", "--yes", "--force", "--preserve-config"); err != nil {
			t.Errorf("teardown: pulumi stack rm: %v", err)
		}
	}
	if !strings.HasPrefix(f.s.HostPath, f.s.WorkDir+string(filepath.Separator)) && f.s.StorageMode == "hostPath" {
		t.Logf("teardown: E2E_STORAGE_HOST_PATH=%s is outside the work dir; remove it on the node by hand", f.s.HostPath)
	}
	if err := os.RemoveAll(f.s.WorkDir); err != nil {
		t.Errorf("teardown: remove %s: %v", f.s.WorkDir, err)
	} else {
		t.Logf("teardown: removed %s (file backend, stack config, hostPath data)", f.s.WorkDir)
	}
}

// leftoverPVs lists the PersistentVolumes that belong to this run: the stack's named volume and any
// volume whose claim was in the test namespace (dynamic mode).
func (f *fixture) leftoverPVs(ctx context.Context, t *testing.T) []string {
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
	if err := f.kube.getJSON(ctx, false, &list, "pv"); err != nil {
		t.Errorf("teardown: list PersistentVolumes: %v", err)
		return nil
	}
	want := map[string]bool{f.s.Namespace + "-registry-data": true}
	if f.out.VolumeName != "" {
		want[f.out.VolumeName] = true
	}
	var names []string
	for _, pv := range list.Items {
		if want[pv.Metadata.Name] || (pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == f.s.Namespace) {
			names = append(names, pv.Metadata.Name)
		}
	}
	return names
}

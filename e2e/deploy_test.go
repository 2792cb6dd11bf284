//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// stepDeploy creates the stack, previews, deploys and waits until the registry answers through
// the Ingress with the stack's certificate.
func (f *fixture) stepDeploy(t *testing.T) {
	ctx := context.Background()
	if err := f.Pulumi.InitStack(ctx); err != nil {
		t.Fatal(err)
	}
	f.StackCreated = true
	if err := f.Pulumi.SetConfig(ctx, f.Settings.StackConfig()); err != nil {
		t.Fatal(err)
	}

	err := f.Timed("pulumi preview", func() (string, error) {
		_, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview", "preview", "--diff")
		return "first run compiles the program", err
	})
	if err != nil {
		t.Fatalf("pulumi preview: %v", err)
	}

	var ops []kit.StepOp
	err = f.Timed("pulumi up", func() (string, error) {
		var err error
		ops, err = f.Pulumi.Up(ctx, "up")
		return fmt.Sprintf("%d resources created", countOps(ops, "create")), err
	})
	if err != nil {
		t.Fatalf("pulumi up: %v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	t.Logf("pulumi up: %s", kit.SummarizeOps(ops))

	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}

	err = f.Timed("wait Ready", func() (string, error) {
		note := "registry x2, redis, PVC Bound"
		if f.Settings.S3 != nil {
			note = "registry x2, redis (no claim: s3)"
		}
		return note, f.WaitReady(ctx, 2)
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.Kube.Events(ctx))
	}

	if err := f.Connect(ctx, t); err != nil {
		t.Fatal(err)
	}
}

// stepPreviewNoChanges: a preview right after up must be empty (the program is deterministic:
// no timestamps, random values or reordered maps leaking into inputs).
func (f *fixture) stepPreviewNoChanges(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	err := f.Timed("pulumi preview --expect-no-changes", func() (string, error) {
		_, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-no-changes", "preview", "--expect-no-changes", "--diff")
		return "", err
	})
	if err != nil {
		t.Fatalf("preview after up is not empty: %v", err)
	}
}

// stepAuth checks basic auth through the Ingress: none and wrong credentials are refused.
func (f *fixture) stepAuth(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	cases := []struct {
		name       string
		noAuth     bool
		user, pass string
		want       int
	}{
		{"no credentials", true, "", "", http.StatusUnauthorized},
		{"wrong password", false, f.Out.Username, f.Out.Password + "-wrong", http.StatusUnauthorized},
		{"unknown user", false, "not-" + f.Out.Username, f.Out.Password, http.StatusUnauthorized},
		{"stack credentials", false, f.Out.Username, f.Out.Password, http.StatusOK},
	}
	for _, acct := range f.Settings.Accounts()[1:] {
		cases = append(cases,
			struct {
				name       string
				noAuth     bool
				user, pass string
				want       int
			}{"account " + acct, false, acct, f.Out.Passwords[acct], http.StatusOK},
			struct {
				name       string
				noAuth     bool
				user, pass string
				want       int
			}{"account " + acct + " with the first account's password", false, acct, f.Out.Password, http.StatusUnauthorized})
	}
	for _, c := range cases {
		code, err := f.Client.Ping(ctx, c.noAuth, c.user, c.pass)
		if err != nil {
			t.Errorf("GET /v2/ with %s: %v", c.name, err)
			continue
		}
		if code != c.want {
			t.Errorf("GET /v2/ with %s: HTTP %d, want %d", c.name, code, c.want)
		} else {
			t.Logf("GET /v2/ with %s: HTTP %d", c.name, code)
		}
	}
}

// stepScaleTo3 changes replicas 2 -> 3: the plan and the update may only update in place, every
// resource keeps its identity, and the images pushed before are still there.
func (f *fixture) stepScaleTo3(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"replicas": "3"}); err != nil {
		t.Fatal(err)
	}

	plan, err := f.Pulumi.PreviewJSON(ctx, "preview-replicas-3")
	if err != nil {
		t.Fatal(err)
	}
	var planned []kit.StepOp
	for _, s := range plan.Steps {
		planned = append(planned, kit.StepOp{Op: s.Op, URN: s.URN})
		if len(s.ReplaceReasons) > 0 {
			t.Errorf("preview plans to replace %s because of %v", s.URN, s.ReplaceReasons)
		}
	}
	t.Logf("preview replicas=3: %s (changeSummary %v)", kit.SummarizeOps(planned), plan.ChangeSummary)
	checkInPlace(t, "preview", planned)
	deployURN := k8sURN(before, "kubernetes:apps/v1:Deployment", f.Out.DeploymentName)
	if deployURN == "" {
		t.Errorf("no Deployment %s in the state", f.Out.DeploymentName)
	} else if !slices.Contains(planned, kit.StepOp{Op: "update", URN: deployURN}) {
		t.Errorf("preview does not update the registry Deployment %s: %s", deployURN, kit.SummarizeOps(planned))
	}

	ops, err := f.TimedUp(ctx, "pulumi up (replicas 3)", "up-replicas-3")
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, "up", ops)

	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compared := compareIdentities(t, before, after)
	t.Logf("identity kept for %d resources (IDs, Kubernetes UIDs, random/tls outputs)", compared)

	err = f.Timed("wait Ready (3 replicas)", func() (string, error) {
		return "", f.WaitReady(ctx, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registry pods: %v", pods)

	err = f.Timed("pull all images (3 replicas)", func() (string, error) {
		total := 0
		for _, im := range f.survivors {
			n, err := f.Client.PullImage(ctx, im.Tag, im)
			if err != nil {
				return "", err
			}
			total += n
		}
		return fmt.Sprintf("%d images, %s", len(f.survivors), kit.MiB(total)), nil
	})
	if err != nil {
		t.Errorf("an image pushed before the scale-up does not pull: %v", err)
	}
}

func checkInPlace(t *testing.T, what string, ops []kit.StepOp) {
	t.Helper()
	for _, o := range ops {
		if !kit.InPlaceOps[o.Op] {
			t.Errorf("%s: %s %s (only in-place updates are allowed when scaling)", what, o.Op, o.URN)
		}
	}
}

// compareIdentities checks that every resource of before still exists after with the same ID; for
// Kubernetes objects also the same metadata.uid (a replacement makes a new object), and for
// random/tls resources the same outputs (a new password, key or certificate would differ).
func compareIdentities(t *testing.T, before, after []kit.StateResource) int {
	t.Helper()
	return compareIdentitiesExcept(t, before, after, "")
}

func k8sUID(r kit.StateResource) string {
	md, _ := r.Outputs["metadata"].(map[string]any)
	uid, _ := md["uid"].(string)
	return uid
}

func countOps(ops []kit.StepOp, op string) int {
	n := 0
	for _, o := range ops {
		if o.Op == op {
			n++
		}
	}
	return n
}

// k8sURN finds the URN of the Kubernetes object of the given type and metadata.name.
func k8sURN(resources []kit.StateResource, typ, name string) string {
	for _, r := range resources {
		if r.Type != typ {
			continue
		}
		md, _ := r.Outputs["metadata"].(map[string]any)
		if n, _ := md["name"].(string); n == name {
			return r.URN
		}
	}
	return ""
}

// stepDestroy destroys the stack and reports exactly what survives: the retained PV (hostPath
// mode) in Released state and the data directory with the blobs. Teardown deletes them.
func (f *fixture) stepDestroy(t *testing.T) {
	need(t, f.StackCreated, "stack")
	ctx := context.Background()
	err := f.Timed("pulumi destroy", func() (string, error) {
		_, err := f.Pulumi.RunLong(ctx, kit.DestroyTimeout, "destroy", "destroy", "--yes", "--skip-preview")
		return "", err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Destroyed = true

	err = f.Timed("namespace deleted", func() (string, error) {
		return f.Settings.Namespace, kit.Poll(ctx, kit.NamespaceGoneTimeout, 2*time.Second, func() (bool, error) {
			_, err := f.Kube.Run(ctx, false, "get", "namespace", f.Settings.Namespace)
			if kit.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
	})
	if err != nil {
		t.Errorf("namespace %s still exists after destroy: %v", f.Settings.Namespace, err)
	}

	var survivors []string
	for _, name := range f.LeftoverPVs(ctx, t) {
		var pv struct {
			Spec struct {
				ReclaimPolicy string `json:"persistentVolumeReclaimPolicy"`
				HostPath      *struct {
					Path string `json:"path"`
				} `json:"hostPath"`
			} `json:"spec"`
			Status struct {
				Phase string `json:"phase"`
			} `json:"status"`
		}
		if err := f.Kube.GetJSON(ctx, false, &pv, "pv", name); err != nil {
			t.Errorf("pv %s: %v", name, err)
			continue
		}
		path := ""
		if pv.Spec.HostPath != nil {
			path = pv.Spec.HostPath.Path
		}
		survivors = append(survivors, fmt.Sprintf("PersistentVolume %s: phase %s, reclaim %s, hostPath %q", name, pv.Status.Phase, pv.Spec.ReclaimPolicy, path))
		if f.Out.VolumeName != "" && name == f.Out.VolumeName {
			if pv.Status.Phase != "Released" || pv.Spec.ReclaimPolicy != "Retain" {
				t.Errorf("pv %s: phase %s reclaim %s, want Released/Retain", name, pv.Status.Phase, pv.Spec.ReclaimPolicy)
			}
		}
	}

	// Out.VolumeName: the stack ran in hostPath mode (also before an S3 phase moved it to a bucket).
	if f.Out.VolumeName != "" {
		if len(survivors) == 0 {
			t.Errorf("the hostPath PersistentVolume %s did not survive destroy (retainOnDelete expected)", f.Out.VolumeName)
		}
		blobsDir := filepath.Join(f.Settings.HostPath, "docker", "registry", "v2", "blobs")
		n, size, err := countFiles(blobsDir)
		switch {
		case os.IsNotExist(err):
			survivors = append(survivors, fmt.Sprintf("data dir %s: not on this machine (remote node?)", f.Settings.HostPath))
		case err != nil:
			t.Errorf("data dir %s: %v", blobsDir, err)
		default:
			survivors = append(survivors, fmt.Sprintf("data dir %s: %d blob files, %s under docker/registry/v2/blobs", f.Settings.HostPath, n, kit.MiB(int(size))))
			if n == 0 {
				t.Errorf("data dir %s survived but holds no blobs", f.Settings.HostPath)
			}
		}
	}
	if len(survivors) == 0 {
		survivors = append(survivors, "nothing")
	}
	msg := "survived pulumi destroy:\n" + strings.Join(survivors, "\n")
	if f.Settings.S3 == nil {
		msg += "\nreclaim: kubectl delete pv " + f.Out.VolumeName + "; rm -rf " + f.Settings.HostPath + " on the node (teardown does both)"
	}
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// countFiles counts the regular files below dir and their total size.
func countFiles(dir string) (int, int64, error) {
	if _, err := os.Stat(dir); err != nil {
		return 0, 0, err
	}
	n, size := 0, int64(0)
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n++
			size += info.Size()
		}
		return nil
	})
	return n, size, err
}

// jsonString is s as it appears inside a JSON string (escaped), without the quotes.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		return s
	}
	return string(b[1 : len(b)-1])
}

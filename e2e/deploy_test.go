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
	"sort"
	"strings"
	"testing"
	"time"
)

// stepDeploy creates the stack, previews, deploys and waits until the registry answers through
// the Ingress with the stack's certificate.
func (f *fixture) stepDeploy(t *testing.T) {
	ctx := context.Background()
	if err := f.pulumi.initStack(ctx); err != nil {
		t.Fatal(err)
	}
	f.stackCreated = true
	if err := f.pulumi.setConfig(ctx, f.s.stackConfig()); err != nil {
		t.Fatal(err)
	}

	err := f.timed("pulumi preview", func() (string, error) {
		_, err := f.pulumi.runLong(ctx, previewTimeout, "preview", "preview", "--diff")
		return "first run compiles the program", err
	})
	if err != nil {
		t.Fatalf("pulumi preview: %v", err)
	}

	var ops []stepOp
	err = f.timed("pulumi up", func() (string, error) {
		var err error
		ops, err = f.pulumi.up(ctx, "up")
		return fmt.Sprintf("%d resources created", countOps(ops, "create")), err
	})
	if err != nil {
		t.Fatalf("pulumi up: %v\nevents:\n%s", err, f.kube.events(ctx))
	}
	t.Logf("pulumi up: %s", summarizeOps(ops))

	if err := f.loadOutputs(ctx); err != nil {
		t.Fatal(err)
	}

	err = f.timed("wait Ready", func() (string, error) {
		return "registry x2, redis, PVC Bound", f.waitReady(ctx, 2)
	})
	if err != nil {
		t.Fatalf("%v\nevents:\n%s", err, f.kube.events(ctx))
	}

	if err := f.connect(ctx, t); err != nil {
		t.Fatal(err)
	}
}

// loadOutputs reads and checks the stack outputs of the contract.
func (f *fixture) loadOutputs(ctx context.Context) error {
	m, err := f.pulumi.outputs(ctx, true)
	if err != nil {
		return err
	}
	get := func(key string, dst *string) error {
		v, ok := m[key].(string)
		if !ok || v == "" {
			return fmt.Errorf("stack output %q missing or not a non-empty string (got %T)", key, m[key])
		}
		*dst = v
		return nil
	}
	o := &f.out
	for key, dst := range map[string]*string{
		"url": &o.URL, "hostname": &o.Hostname, "namespace": &o.Namespace, "username": &o.Username,
		"password": &o.Password, "caCertPem": &o.CACertPEM, "deploymentName": &o.DeploymentName,
		"serviceName": &o.ServiceName, "gcCronJobName": &o.GCCronJobName,
		"redisDeploymentName": &o.RedisDeploymentName, "claimName": &o.ClaimName,
		"tlsSecretName": &o.TLSSecretName, "routing": &o.Routing,
	} {
		if err := get(key, dst); err != nil {
			return err
		}
	}
	if f.s.StorageMode == "hostPath" {
		if err := get("volumeName", &o.VolumeName); err != nil {
			return err
		}
	}
	pw, ok := m["passwords"].(map[string]any)
	if !ok {
		return fmt.Errorf("stack output passwords missing or not a map (got %T)", m["passwords"])
	}
	o.Passwords = map[string]string{}
	for user, v := range pw {
		s, ok := v.(string)
		if !ok || len(s) < 24 {
			return fmt.Errorf("stack output passwords[%s] is not a generated password", user)
		}
		o.Passwords[user] = s
	}
	for _, acct := range f.s.accounts() {
		if _, ok := o.Passwords[acct]; !ok {
			return fmt.Errorf("stack output passwords lacks account %s (has %d accounts)", acct, len(o.Passwords))
		}
	}
	if o.Passwords[o.Username] != o.Password {
		return fmt.Errorf("passwords[%s] differs from the password output", o.Username)
	}
	for _, key := range []string{"dockerLoginCommand", "trustCaCommands", "cranePushExample"} {
		if _, ok := m[key]; !ok {
			return fmt.Errorf("stack output %q missing", key)
		}
	}
	if o.Hostname != f.s.Hostname || o.URL != "https://"+f.s.Hostname || o.Namespace != f.s.Namespace {
		return fmt.Errorf("outputs hostname=%q url=%q namespace=%q do not match the config (%s, %s)", o.Hostname, o.URL, o.Namespace, f.s.Hostname, f.s.Namespace)
	}
	return nil
}

// waitReady waits for both Deployments, the registry pods and the claim.
func (f *fixture) waitReady(ctx context.Context, replicas int) error {
	for _, d := range []string{f.out.RedisDeploymentName, f.out.DeploymentName} {
		if err := f.kube.rolloutStatus(ctx, d, readyTimeout); err != nil {
			return err
		}
	}
	if _, err := f.kube.waitReadyPods(ctx, registryPodSelector, replicas, readyTimeout); err != nil {
		return err
	}
	if _, err := f.kube.waitReadyPods(ctx, redisPodSelector, 1, readyTimeout); err != nil {
		return err
	}
	phase, err := f.kube.ns(ctx, "get", "pvc", f.out.ClaimName, "-o", "jsonpath={.status.phase}")
	if err != nil {
		return fmt.Errorf("claim %s: %w", f.out.ClaimName, err)
	}
	if phase != "Bound" {
		return fmt.Errorf("claim %s is %q, want Bound", f.out.ClaimName, phase)
	}
	return nil
}

// connect sets up the path to the Ingress (given address or a port-forward to the controller) and
// the registry client, and waits until the Ingress routes to the registry with the stack's cert.
func (f *fixture) connect(ctx context.Context, t *testing.T) error {
	f.ingressAddr = f.s.IngressAddr
	if f.ingressAddr == "" {
		ns, svc, _ := strings.Cut(f.s.IngressService, "/")
		addr, stop, err := f.kube.portForward(ctx, ns, svc, f.s.IngressPort)
		if err != nil {
			return fmt.Errorf("no E2E_INGRESS_ADDR/INGRESS_HTTPS_ADDR and port-forward to %s failed: %w", f.s.IngressService, err)
		}
		f.ingressAddr, f.stopPF = addr, stop
		t.Logf("port-forward %s:%s -> %s", f.s.IngressService, f.s.IngressPort, addr)
	}
	hc, err := newHTTPClient(f.s.Hostname, f.ingressAddr, []byte(f.out.CACertPEM))
	if err != nil {
		return err
	}
	f.client, err = newRegistryClient(hc, f.s.Hostname, f.out.Username, f.out.Password)
	if err != nil {
		return err
	}
	// Until the controller has loaded the Ingress and its TLS Secret it answers 404 or with its
	// default certificate; poll until /v2/ is the registry's 401.
	var last string
	return f.timed("ingress reachable", func() (string, error) {
		err := poll(ctx, ingressTimeout, 2*time.Second, func() (bool, error) {
			code, err := f.client.ping(ctx, true, "", "")
			if err != nil {
				last = err.Error()
				return false, nil
			}
			last = fmt.Sprintf("HTTP %d", code)
			return code == http.StatusUnauthorized, nil
		})
		if err != nil {
			return "", fmt.Errorf("https://%s/v2/ via %s never answered 401 (last: %s): %w", f.s.Hostname, f.ingressAddr, last, err)
		}
		return "https://" + f.s.Hostname + " via " + f.ingressAddr, nil
	})
}

// stepPreviewNoChanges: a preview right after up must be empty (the program is deterministic:
// no timestamps, random values or reordered maps leaking into inputs).
func (f *fixture) stepPreviewNoChanges(t *testing.T) {
	need(t, f.client != nil, "deployment")
	ctx := context.Background()
	err := f.timed("pulumi preview --expect-no-changes", func() (string, error) {
		_, err := f.pulumi.runLong(ctx, previewTimeout, "preview-no-changes", "preview", "--expect-no-changes", "--diff")
		return "", err
	})
	if err != nil {
		t.Fatalf("preview after up is not empty: %v", err)
	}
}

// stepAuth checks basic auth through the Ingress: none and wrong credentials are refused.
func (f *fixture) stepAuth(t *testing.T) {
	need(t, f.client != nil, "deployment")
	ctx := context.Background()
	cases := []struct {
		name       string
		noAuth     bool
		user, pass string
		want       int
	}{
		{"no credentials", true, "", "", http.StatusUnauthorized},
		{"wrong password", false, f.out.Username, f.out.Password + "-wrong", http.StatusUnauthorized},
		{"unknown user", false, "not-" + f.out.Username, f.out.Password, http.StatusUnauthorized},
		{"stack credentials", false, f.out.Username, f.out.Password, http.StatusOK},
	}
	for _, acct := range f.s.accounts()[1:] {
		cases = append(cases,
			struct {
				name       string
				noAuth     bool
				user, pass string
				want       int
			}{"account " + acct, false, acct, f.out.Passwords[acct], http.StatusOK},
			struct {
				name       string
				noAuth     bool
				user, pass string
				want       int
			}{"account " + acct + " with the first account's password", false, acct, f.out.Password, http.StatusUnauthorized})
	}
	for _, c := range cases {
		code, err := f.client.ping(ctx, c.noAuth, c.user, c.pass)
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
	need(t, f.client != nil, "deployment")
	ctx := context.Background()
	before, err := f.pulumi.exportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.pulumi.setConfig(ctx, map[string]string{"replicas": "3"}); err != nil {
		t.Fatal(err)
	}

	plan, err := f.pulumi.previewJSON(ctx, "preview-replicas-3")
	if err != nil {
		t.Fatal(err)
	}
	var planned []stepOp
	for _, s := range plan.Steps {
		planned = append(planned, stepOp{Op: s.Op, URN: s.URN})
		if len(s.ReplaceReasons) > 0 {
			t.Errorf("preview plans to replace %s because of %v", s.URN, s.ReplaceReasons)
		}
	}
	t.Logf("preview replicas=3: %s (changeSummary %v)", summarizeOps(planned), plan.ChangeSummary)
	checkInPlace(t, "preview", planned)
	deployURN := k8sURN(before, "kubernetes:apps/v1:Deployment", f.out.DeploymentName)
	if deployURN == "" {
		t.Errorf("no Deployment %s in the state", f.out.DeploymentName)
	} else if !slices.Contains(planned, stepOp{Op: "update", URN: deployURN}) {
		t.Errorf("preview does not update the registry Deployment %s: %s", deployURN, summarizeOps(planned))
	}

	var ops []stepOp
	err = f.timed("pulumi up (replicas 3)", func() (string, error) {
		var err error
		ops, err = f.pulumi.up(ctx, "up-replicas-3")
		return summarizeOps(ops), err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkInPlace(t, "up", ops)

	after, err := f.pulumi.exportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compared := compareIdentities(t, before, after)
	t.Logf("identity kept for %d resources (IDs, Kubernetes UIDs, random/tls outputs)", compared)

	err = f.timed("wait Ready (3 replicas)", func() (string, error) {
		return "", f.waitReady(ctx, 3)
	})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := f.kube.pods(ctx, registryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registry pods: %v", pods)

	err = f.timed("pull all images (3 replicas)", func() (string, error) {
		total := 0
		for _, im := range f.survivors {
			n, err := f.client.pullImage(ctx, im.Tag, im)
			if err != nil {
				return "", err
			}
			total += n
		}
		return fmt.Sprintf("%d images, %s", len(f.survivors), mib(total)), nil
	})
	if err != nil {
		t.Errorf("an image pushed before the scale-up does not pull: %v", err)
	}
}

// destructive operations: anything but these means a resource lost its identity.
var inPlaceOps = map[string]bool{"same": true, "update": true, "refresh": true, "read": true}

func checkInPlace(t *testing.T, what string, ops []stepOp) {
	t.Helper()
	for _, o := range ops {
		if !inPlaceOps[o.Op] {
			t.Errorf("%s: %s %s (only in-place updates are allowed when scaling)", what, o.Op, o.URN)
		}
	}
}

// compareIdentities checks that every resource of before still exists after with the same ID; for
// Kubernetes objects also the same metadata.uid (a replacement makes a new object), and for
// random/tls resources the same outputs (a new password, key or certificate would differ).
func compareIdentities(t *testing.T, before, after []stateResource) int {
	t.Helper()
	return compareIdentitiesExcept(t, before, after, "")
}

func k8sUID(r stateResource) string {
	md, _ := r.Outputs["metadata"].(map[string]any)
	uid, _ := md["uid"].(string)
	return uid
}

func countOps(ops []stepOp, op string) int {
	n := 0
	for _, o := range ops {
		if o.Op == op {
			n++
		}
	}
	return n
}

// k8sURN finds the URN of the Kubernetes object of the given type and metadata.name.
func k8sURN(resources []stateResource, typ, name string) string {
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

// summarizeOps counts operations and names the non-"same" ones.
func summarizeOps(ops []stepOp) string {
	counts := map[string]int{}
	var changed []string
	for _, o := range ops {
		counts[o.Op]++
		if o.Op != "same" {
			changed = append(changed, o.Op+" "+shortURN(o.URN))
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, counts[k]))
	}
	s := strings.Join(parts, " ")
	if len(changed) > 0 && len(changed) <= 12 {
		s += " [" + strings.Join(changed, ", ") + "]"
	}
	return s
}

// shortURN keeps type and name of a URN (urn:pulumi:stack::project::type::name).
func shortURN(urn string) string {
	parts := strings.Split(urn, "::")
	if len(parts) < 2 {
		return urn
	}
	typ := parts[len(parts)-2]
	if i := strings.LastIndex(typ, "$"); i >= 0 {
		typ = typ[i+1:]
	}
	return typ + "::" + parts[len(parts)-1]
}

// stepDestroy destroys the stack and reports exactly what survives: the retained PV (hostPath
// mode) in Released state and the data directory with the blobs. Teardown deletes them.
func (f *fixture) stepDestroy(t *testing.T) {
	need(t, f.stackCreated, "stack")
	ctx := context.Background()
	err := f.timed("pulumi destroy", func() (string, error) {
		_, err := f.pulumi.runLong(ctx, destroyTimeout, "destroy", "destroy", "--yes", "--skip-preview")
		return "", err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.destroyed = true

	err = f.timed("namespace deleted", func() (string, error) {
		return f.s.Namespace, poll(ctx, namespaceGoneTimeout, 2*time.Second, func() (bool, error) {
			_, err := f.kube.run(ctx, false, "get", "namespace", f.s.Namespace)
			if isNotFound(err) {
				return true, nil
			}
			return false, err
		})
	})
	if err != nil {
		t.Errorf("namespace %s still exists after destroy: %v", f.s.Namespace, err)
	}

	var survivors []string
	for _, name := range f.leftoverPVs(ctx, t) {
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
		if err := f.kube.getJSON(ctx, false, &pv, "pv", name); err != nil {
			t.Errorf("pv %s: %v", name, err)
			continue
		}
		path := ""
		if pv.Spec.HostPath != nil {
			path = pv.Spec.HostPath.Path
		}
		survivors = append(survivors, fmt.Sprintf("PersistentVolume %s: phase %s, reclaim %s, hostPath %q", name, pv.Status.Phase, pv.Spec.ReclaimPolicy, path))
		if f.s.StorageMode == "hostPath" && name == f.out.VolumeName {
			if pv.Status.Phase != "Released" || pv.Spec.ReclaimPolicy != "Retain" {
				t.Errorf("pv %s: phase %s reclaim %s, want Released/Retain", name, pv.Status.Phase, pv.Spec.ReclaimPolicy)
			}
		}
	}

	if f.s.StorageMode == "hostPath" {
		if len(survivors) == 0 {
			t.Errorf("the hostPath PersistentVolume %s did not survive destroy (retainOnDelete expected)", f.out.VolumeName)
		}
		blobsDir := filepath.Join(f.s.HostPath, "docker", "registry", "v2", "blobs")
		n, size, err := countFiles(blobsDir)
		switch {
		case os.IsNotExist(err):
			survivors = append(survivors, fmt.Sprintf("data dir %s: not on this machine (remote node?)", f.s.HostPath))
		case err != nil:
			t.Errorf("data dir %s: %v", blobsDir, err)
		default:
			survivors = append(survivors, fmt.Sprintf("data dir %s: %d blob files, %s under docker/registry/v2/blobs", f.s.HostPath, n, mib(int(size))))
			if n == 0 {
				t.Errorf("data dir %s survived but holds no blobs", f.s.HostPath)
			}
		}
	}
	if len(survivors) == 0 {
		survivors = append(survivors, "nothing")
	}
	msg := "survived pulumi destroy:\n" + strings.Join(survivors, "\n") +
		"\nreclaim: kubectl delete pv " + f.out.VolumeName + "; rm -rf " + f.s.HostPath + " on the node (teardown does both)"
	t.Log(msg)
	f.report.fact("%s", msg)
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

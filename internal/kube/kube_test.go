package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
)

func TestLabelsHaveTheRecommendedKeys(t *testing.T) {
	got := Labels("registry", "blue", "cache")
	want := map[string]string{
		"app.kubernetes.io/name":       "registry",
		"app.kubernetes.io/instance":   "blue",
		"app.kubernetes.io/component":  "cache",
		"app.kubernetes.io/part-of":    PartOf,
		"app.kubernetes.io/managed-by": "pulumi",
	}
	if len(got) != len(want) {
		t.Errorf("Labels has %d keys, want exactly %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestSelectorIsASubsetOfLabels(t *testing.T) {
	for _, c := range []struct{ app, instance, component string }{
		{"registry", "registry", "registry"},
		{"redis", "registry-redis", "cache"},
		{"registry-gc", "registry-gc", "garbage-collection"},
	} {
		sel, labels := Selector(c.app, c.instance), Labels(c.app, c.instance, c.component)
		if len(sel) == 0 {
			t.Fatalf("Selector(%q, %q) is empty: it would select every pod", c.app, c.instance)
		}
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("Selector(%q, %q)[%s] = %q, but the pods' label is %q: the selector would match nothing",
					c.app, c.instance, k, v, labels[k])
			}
		}
		// Selectors are immutable on Deployments: they must not carry labels that may change.
		for _, mutable := range []string{"app.kubernetes.io/component", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"} {
			if _, ok := sel[mutable]; ok {
				t.Errorf("Selector(%q, %q) contains %s, a label that may change; Deployment selectors are immutable", c.app, c.instance, mutable)
			}
		}
	}
	if a, b := Selector("registry", "a"), Selector("registry", "b"); a["app.kubernetes.io/instance"] == b["app.kubernetes.io/instance"] {
		t.Errorf("two instances share a selector: %v", a)
	}
}

// renderPod registers a Pod built from the given security contexts under the mock engine, so
// that the test reads the plain values Kubernetes would receive.
func renderPod(t *testing.T, pod *corev1.PodSecurityContextArgs, container *corev1.SecurityContextArgs) testutil.Resource {
	t.Helper()
	m := testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		_, err := corev1.NewPod(ctx, "probe", &corev1.PodArgs{Spec: &corev1.PodSpecArgs{
			SecurityContext: pod,
			Containers: corev1.ContainerArray{&corev1.ContainerArgs{
				Name: pulumi.String("c"), Image: pulumi.String("busybox"), SecurityContext: container,
			}},
		}})
		return err
	})
	return m.Get(t, "kubernetes:core/v1:Pod", "probe")
}

func TestSecurityContextsAreRestricted(t *testing.T) {
	pod := renderPod(t, PodSecurityContext(1234), ContainerSecurityContext())
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "securityContext", "runAsNonRoot"}, true},
		{[]any{"spec", "securityContext", "runAsUser"}, 1234.0},
		{[]any{"spec", "securityContext", "runAsGroup"}, 1234.0},
		{[]any{"spec", "securityContext", "fsGroup"}, 1234.0},
		{[]any{"spec", "securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		{[]any{"spec", "containers", 0, "securityContext", "allowPrivilegeEscalation"}, false},
		{[]any{"spec", "containers", 0, "securityContext", "readOnlyRootFilesystem"}, true},
		{[]any{"spec", "containers", 0, "securityContext", "runAsNonRoot"}, true},
		{[]any{"spec", "containers", 0, "securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		{[]any{"spec", "containers", 0, "securityContext", "capabilities", "drop"}, []any{"ALL"}},
		{[]any{"spec", "containers", 0, "securityContext", "capabilities", "add"}, nil},
		{[]any{"spec", "containers", 0, "securityContext", "privileged"}, nil},
	} {
		if got := pod.Lookup(c.path...); fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%v = %v, want %v (restricted Pod Security Standard)", c.path, got, c.want)
		}
	}
}

func TestResourcesRequestAndOptionalMemoryLimit(t *testing.T) {
	r := Resources("100m", "128Mi", "1Gi")
	req, _ := r.Requests.(pulumi.StringMap)
	if req["cpu"] != pulumi.String("100m") || req["memory"] != pulumi.String("128Mi") {
		t.Errorf("requests = %#v, want cpu 100m memory 128Mi", r.Requests)
	}
	lim, _ := r.Limits.(pulumi.StringMap)
	if len(lim) != 1 || lim["memory"] != pulumi.String("1Gi") {
		t.Errorf("limits = %#v, want only memory 1Gi (CPU is never limited)", r.Limits)
	}
	if r := Resources("10m", "16Mi", ""); r.Limits != nil {
		t.Errorf("limits = %#v with no memory limit given, want none", r.Limits)
	}
}

func TestChecksum(t *testing.T) {
	sha := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		plain := pulumi.String("log: info\n").ToStringOutput()
		a1, aSecret := testutil.Resolve(t, Checksum(plain))
		a2, _ := testutil.Resolve(t, Checksum(pulumi.String("log: info\n").ToStringOutput()))
		b, _ := testutil.Resolve(t, Checksum(pulumi.String("log: debug\n").ToStringOutput()))
		if a1 != sha("log: info\n") {
			t.Errorf("Checksum = %q, want the SHA-256 hex of the input %q", a1, sha("log: info\n"))
		}
		if a1 != a2 {
			t.Errorf("Checksum is not deterministic: %q then %q", a1, a2)
		}
		if a1 == b {
			t.Errorf("Checksum did not change when the input changed: %q", a1)
		}
		if aSecret {
			t.Error("Checksum of a plain input is secret")
		}

		secretInput := pulumi.ToSecret(pulumi.String("password: hunter2\n")).(pulumi.StringOutput)
		if !pulumi.IsSecret(secretInput) {
			t.Fatal("test setup: the input is not secret, the check below would prove nothing")
		}
		s, sSecret := testutil.Resolve(t, Checksum(secretInput))
		if sSecret {
			t.Error("Checksum of a secret input is still secret: previews would show [secret] instead of which pods roll")
		}
		if s != sha("password: hunter2\n") {
			t.Errorf("Checksum of a secret = %q, want the SHA-256 of its value", s)
		}
		return nil
	})
}

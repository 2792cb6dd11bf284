package stackconfig

import (
	"reflect"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/registry"
)

func TestPlacementAndRegistryEnvReachTheArgs(t *testing.T) {
	c, err := parse(map[string]string{
		"placement": `{"all":{"imagePullSecrets":["mirror-creds"],"priorityClassName":"infra"},` +
			`"registry":{"nodeSelector":{"node-pool":"infra"},"tolerations":[{"key":"dedicated","operator":"Equal","value":"infra","effect":"NoSchedule"}],` +
			`"podAnnotations":{"sidecar.istio.io/inject":"false"}}}`,
		"registry.env": `{"NO_PROXY":".svc","HTTPS_PROXY":"http://proxy.internal:3128"}`,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := c.Args()
	p := a.Placement
	if p == nil || p.All.PriorityClassName != "infra" || p.Registry.NodeSelector["node-pool"] != "infra" || len(p.Registry.Tolerations) != 1 || p.GC != nil {
		t.Fatalf("placement args %+v", p)
	}
	// In name order: the pod spec must not change from one preview to the next.
	want := []registry.EnvVar{{Name: "HTTPS_PROXY", Value: "http://proxy.internal:3128"}, {Name: "NO_PROXY", Value: ".svc"}}
	if !reflect.DeepEqual(a.Registry.Env, want) {
		t.Errorf("registry env %v, want %v", a.Registry.Env, want)
	}
	if d := DefaultArgs(); d.Placement != nil || d.Registry.Env != nil {
		t.Errorf("defaults add placement %+v or env %v", d.Placement, d.Registry.Env)
	}
}

// Each problem names its key path, and they come all at once.
func TestInvalidPlacementIsRefusedWithItsPath(t *testing.T) {
	_, err := parse(map[string]string{
		"cache.enabled": "false",
		"placement": `{"all":{"podLabels":{"app.kubernetes.io/name":"mine"}},"registry":{"tolerations":[{"key":"k","operator":"Sometimes"}]},` +
			`"gc":{"priorityClassName":"Not_A_Name"},"cache":{"nodeSelector":{"a":"b"}},"mirrors":{}}`,
		"registry.env": `{"REGISTRY_AUTH":"none","OTEL_TRACES_EXPORTER":"otlp","1BAD":"x","FENCE_SECONDS":"999999","CONFIG":"/x"}`,
	})
	if err == nil {
		t.Fatal("invalid placement accepted")
	}
	for _, want := range []string{`placement.all.podLabels["app.kubernetes.io/name"]`, "placement.registry.tolerations[0].operator",
		"placement.gc.priorityClassName", `config "placement.cache"`, `config "placement.mirrors"`, "registry.env.REGISTRY_AUTH",
		"registry.env.OTEL_TRACES_EXPORTER", "registry.env.1BAD",
		// GC's collector gets registry.env too: its lease fence must not be overridable.
		`registry.env.FENCE_SECONDS: "FENCE_SECONDS" is refused: GC's collector`, "registry.env.CONFIG"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s:\n%v", want, err)
		}
	}
	if _, err := parse(map[string]string{"placement": `{"registry":{"nodeSelectr":{"a":"b"}}}`}); err == nil || !strings.Contains(err.Error(), "nodeSelectr") {
		t.Errorf("a misspelt field: %v, want it refused by name (never silently ignored)", err)
	}
	if _, err := parse(map[string]string{"storage.s3.bucket": "images", "storage.s3.region": "us-east-1", "storage.s3.caBundlePem": testCAPEM(t),
		"registry.env": `{"AWS_CA_BUNDLE":"/etc/ssl/mine.pem"}`}); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
		t.Errorf("registry.env overriding the S3 CA bundle the stack sets: %v, want it refused", err)
	}
}

func TestSecretRegistryEnvIsRefused(t *testing.T) {
	_, err := parseWithSecrets(map[string]string{"registry.env": `{"HTTPS_PROXY":"http://user:pw@proxy:3128"}`}, map[string]bool{"registry": true})
	if err == nil || !strings.Contains(err.Error(), `"registry": a secret value is refused: registry.env`) {
		t.Errorf("secret registry.env: %v", err)
	}
}

package stackconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/tlscert"
)

// parse parses values given by config path (as `pulumi config set --path` stores them); a
// top-level key holding a credential path counts as set with --secret.
func parse(values map[string]string) (*Config, error) {
	_, secret := testutil.Nest(values)
	return parseWithSecrets(values, secret)
}

func parseWithSecrets(values map[string]string, secret map[string]bool) (*Config, error) {
	top, _ := testutil.Nest(values)
	return Parse(func(name string) (string, bool) {
		v, ok := top[name]
		return v, ok
	}, func(name string) bool { return secret[name] })
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	if c.Replicas != 2 || c.Hostname != "registry.minikube.test" || c.StorageMode != StorageDynamic || c.StorageClassName != "standard" ||
		!c.CacheEnabled || !c.CreateNamespace || c.IngressClassName != "nginx" || c.ExtraDNSNames == nil {
		t.Errorf("unexpected defaults: %+v", c)
	}
}

func TestValidValuesAreAccepted(t *testing.T) {
	c, err := parse(map[string]string{
		"replicas":                     "5",
		"hostname":                     "registry.example.com",
		"extraDnsNames":                `["registry.internal","r.example.org"]`,
		"extraIpAddresses":             `["127.0.0.1","::1"]`,
		"routing.sourceRanges":         `["10.0.0.0/8"]`,
		"storage.filesystem.mode":      "dynamic",
		"storage.filesystem.className": "fast-ssd",
		"storage.filesystem.pvcSize":   "100Gi",
		"storage.filesystem.pvSize":    "1Gi", // ignored outside hostPath mode
		"gc.schedule":                  "@weekly",
		"registry.image":               "ghcr.io/org/registry@sha256:" + strings.Repeat("a", 64),
		"cache.maxMemory":              "1GB",
		"registry.logLevel":            "debug",
		"accounts":                     `["ci-bot@example.com","admin","cluster-eu"]`,
	})
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if c.Replicas != 5 || len(c.ExtraIPAddresses) != 2 || !c.CacheEnabled || c.RedisMaxMemory != "1GB" {
		t.Errorf("values not stored: %+v", c)
	}
}

// Every invalid value is rejected with a message naming the key, the value and what is allowed.
func TestInvalidValuesAreRejected(t *testing.T) {
	cases := []struct {
		key, value string
		extra      map[string]string
		allowed    string
	}{
		{key: "replicas", value: "0", allowed: "from 1 to"},
		{key: "replicas", value: "-2", allowed: "from 1 to"},
		{key: "replicas", value: "21", allowed: "from 1 to 20"},
		{key: "replicas", value: "two", allowed: "whole number"},
		{key: "hostname", value: "registry", allowed: "at least one dot"},
		{key: "hostname", value: "Registry.Example.com", allowed: "lower-case DNS name"},
		{key: "hostname", value: "reg_istry.example.com", allowed: "DNS name"},
		{key: "hostname", value: "-registry.example.com", allowed: "DNS name"},
		{key: "hostname", value: "10.0.0.1", allowed: "DNS name"},
		{key: "hostname", value: "", allowed: "DNS name"},
		{key: "hostname", value: "https://registry.example.com", allowed: "DNS name"},
		{key: "extraDnsNames", value: `["ok.example.com","bad name"]`, allowed: "DNS name"},
		{key: "extraDnsNames", value: `registry.example.com`, allowed: "list of strings"},
		{key: "extraIpAddresses", value: `["300.1.1.1"]`, allowed: "IPv4 or IPv6"},
		{key: "routing.sourceRanges", value: `["10.0.0.0"]`, allowed: "CIDR"},
		{key: "routing.sourceRanges", value: `["10.0.0.0/33"]`, allowed: "CIDR"},
		{key: "routing.ingress.className", value: "Nginx!", allowed: "DNS-1123"},
		{key: "namespace", value: "Registry", allowed: "DNS-1123 label"},
		{key: "namespace", value: "a.b", allowed: "DNS-1123 label"},
		{key: "tls.generated.validityHours", value: "1", allowed: "from 24 to"},
		{key: "storage.filesystem.pvSize", value: "10 GB", allowed: "Kubernetes quantity"},
		{key: "storage.filesystem.pvSize", value: "0", allowed: "positive"},
		{key: "storage.filesystem.pvcSize", value: "lots", allowed: "Kubernetes quantity"},
		{key: "storage.filesystem.pvcSize", value: "-1Gi", allowed: "positive"},
		{key: "storage.filesystem.pvcSize", value: "20Gi", extra: map[string]string{"storage.filesystem.mode": "hostPath", "storage.filesystem.pvSize": "10Gi"}, allowed: "no larger than storage.filesystem.pvSize"},
		{key: "storage.filesystem.mode", value: "nfs", allowed: "hostPath, dynamic, existing"},
		{key: "storage.filesystem.mode", value: "HostPath", allowed: "hostPath, dynamic, existing"},
		{key: "storage.filesystem.className", value: "", extra: map[string]string{"storage.filesystem.mode": "dynamic"}, allowed: "DNS-1123"},
		{key: "storage.filesystem.volumeName", value: "", extra: map[string]string{"storage.filesystem.mode": "existing"}, allowed: "required when storage.filesystem.mode is existing"},
		{key: "storage.filesystem.hostPath", value: "data/registry", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "absolute"},
		{key: "storage.filesystem.hostPath", value: "/", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "other than /"},
		{key: "storage.filesystem.hostPath", value: "/data/../etc", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "clean"},
		{key: "storage.filesystem.accessMode", value: "ReadWriteOncePod", allowed: "ReadWriteOnce, ReadWriteMany"},
		{key: "gc.schedule", value: "every sunday", allowed: "cron schedule"},
		{key: "gc.schedule", value: "0 3 * *", allowed: "cron schedule"},
		{key: "gc.schedule", value: "61 3 * * 0", allowed: "cron schedule"},
		{key: "gc.schedule", value: "TZ=UTC 0 3 * * 0", allowed: "without TZ"},
		{key: "gc.suspend", value: "yes", allowed: "true, false"},
		{key: "createNamespace", value: "maybe", allowed: "true, false"},
		{key: "cache.enabled", value: "on", allowed: "true, false"},
		{key: "accounts", value: `[""]`, allowed: "1-64 characters"},
		{key: "accounts", value: `["ad:min"]`, allowed: "1-64 characters"},
		{key: "accounts", value: `["ad min"]`, allowed: "1-64 characters"},
		{key: "accounts", value: `[]`, allowed: "at least one account"},
		{key: "registry.image", value: "registry", allowed: "pinned"},
		{key: "registry.image", value: "registry:latest", allowed: "pinned"},
		{key: "registry.image", value: "registry:2.8.3", allowed: "distribution v3"},
		{key: "storage.filesystem.accessMode", value: "ReadWriteMany", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "hostPath volumes live on one node"},
		{key: "storage.filesystem.chownHostPath", value: "true", allowed: "false unless storage.filesystem.mode is hostPath"},
		// A stack that relied on the old default (hostPath) and set its directory or node.
		{key: "storage.filesystem.mode", value: "dynamic", extra: map[string]string{"storage.filesystem.hostPath": "/data/registry"}, allowed: "the default storage.filesystem.mode is dynamic since 2026-12"},
		{key: "storage.filesystem.mode", value: "dynamic", extra: map[string]string{"storage.filesystem.nodeName": "node-1"}, allowed: "hostPath when storage.filesystem.hostPath or storage.filesystem.nodeName is set"},
		{key: "storage.filesystem.chownHostPath", value: "yes", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "true, false"},
		{key: "storage.filesystem.nodeName", value: "Node_1", extra: map[string]string{"storage.filesystem.mode": "hostPath"}, allowed: "DNS-1123"},
		{key: "registry.image", value: "Registry:3", allowed: "image reference"},
		{key: "registry.image", value: "registry:3 --privileged", allowed: "image reference"},
		{key: "cache.image", value: "redis:", allowed: "image reference"},
		{key: "gc.kubectlImage", value: "http://example.com/kubectl", allowed: "image reference"},
		{key: "cache.maxMemory", value: "64MiB", allowed: "Redis memory size"},
		{key: "cache.maxMemory", value: "0", allowed: "Redis memory size"},
		{key: "cache.maxMemory", value: "-5mb", allowed: "Redis memory size"},
		{key: "cache.cpuRequest", value: "fast", allowed: "Kubernetes quantity"},
		{key: "cache.memoryRequest", value: "1x", allowed: "Kubernetes quantity"},
		{key: "registry.cpuRequest", value: "0", allowed: "positive"},
		{key: "registry.memoryRequest", value: "128MB!", allowed: "Kubernetes quantity"},
		{key: "registry.memoryLimit", value: "64Mi", extra: map[string]string{"registry.memoryRequest": "128Mi"}, allowed: "at least registry.memoryRequest"},
		{key: "registry.logLevel", value: "verbose", allowed: "error, warn, info, debug"},
		{key: "registry.serviceType", value: "ExternalName", allowed: "ClusterIP, NodePort, LoadBalancer"},
		{key: "kubeContext", value: "my context", allowed: "without spaces"},
		{key: "accounts", value: `["admin","ci","ci"]`, allowed: "not used before"},
		{key: "accounts", value: `["admin","admin"]`, allowed: "not used before"},
		{key: "accounts", value: `["admin","ci:bot"]`, allowed: "1-64 characters"},
		{key: "accounts", value: `["admin",""]`, allowed: "1-64 characters"},
		{key: "accounts", value: `["admin","` + strings.Repeat("a", 41) + `"]`, allowed: "at most 40"},
		{key: "accounts", value: `ci`, allowed: "list of strings"},
		// Routing and TLS (issue 8).
		{key: "routing.ingress.controller", value: "haproxy", allowed: "nginx, traefik, other"},
		{key: "routing.ingress.controller", value: "", extra: map[string]string{"routing.ingress.className": "public"}, allowed: `"public" is not a class the stack knows`},
		{key: "routing.ingress.controller", value: "other", extra: map[string]string{"routing.sourceRanges": `["10.0.0.0/8"]`}, allowed: "cannot enforce 10.0.0.0/8"},
		{key: "routing.allowUnenforcedSourceRanges", value: "true", allowed: "false with controller nginx"},
		{key: "routing.allowUnenforcedSourceRanges", value: "sure", allowed: "true, false"},
		{key: "routing.ingress.traefikEntryPoint", value: "web secure", extra: map[string]string{"routing.ingress.className": "traefik"}, allowed: "TLS entry point"},
		{key: "routing.ingress.traefikEntryPoint", value: "", extra: map[string]string{"routing.ingress.className": "traefik"}, allowed: "TLS entry point"},
		{key: "routing.gateway.create.className", value: "", allowed: "required with routing.gateway.create"},
		{key: "routing.gateway.create.className", value: "Traefik", allowed: "DNS-1123"},
		{key: "routing.gateway.existing.name", value: "Edge", extra: map[string]string{"routing.gateway.existing.sectionName": "https"}, allowed: "DNS-1123"},
		{key: "routing.gateway.existing.sectionName", value: "", extra: map[string]string{"routing.gateway.existing.name": "edge"}, allowed: "plain-HTTP ones included"},
		{key: "routing.gateway.existing.namespace", value: "Platform", extra: map[string]string{"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https"}, allowed: "DNS-1123 label"},
		{key: "routing.gateway.create.listenerPort", value: "-1", extra: map[string]string{"routing.gateway.create.className": "traefik"}, allowed: "from 1 to 65535"},
		{key: "routing.gateway.create.listenerPort", value: "70000", extra: map[string]string{"routing.gateway.create.className": "traefik"}, allowed: "from 1 to 65535"},
		{key: "routing.gateway.controller", value: "nginx", extra: map[string]string{"routing.gateway.create.className": "traefik"}, allowed: "traefik, other"},
		{key: "routing.gateway.controller", value: "other", extra: map[string]string{"routing.gateway.create.className": "eg", "routing.sourceRanges": `["10.0.0.0/8"]`}, allowed: "cannot enforce"},
		{key: "routing.allowUnenforcedSourceRanges", value: "true", extra: map[string]string{"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https", "routing.sourceRanges": `["10.0.0.0/8"]`}, allowed: "unless routing.gateway.controller is other"},
		{key: "tls.secret.name", value: "registry-tls", allowed: "the generated certificate's Secret"},
		{key: "routing.gateway.create.className", value: "", extra: map[string]string{"routing.gateway.create.listenerPort": "8443"}, allowed: "required with routing.gateway.create"},
		{key: "routing.gateway.controller", value: "", extra: map[string]string{"routing.gateway.create.className": "eg", "routing.sourceRanges": `["10.0.0.0/8"]`}, allowed: "traefik while routing.sourceRanges is set"},
		{key: "tls.secret.name", value: "", allowed: "required with tls.secret"},
		{key: "tls.secret.name", value: "Corp_TLS", allowed: "DNS-1123"},
		{key: "tls.secret.caCertPem", value: "not a certificate", extra: map[string]string{"tls.secret.name": "corp-tls"}, allowed: "PEM-encoded CA certificates"},
		{key: "tls.secret.caCertPem", value: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", extra: map[string]string{"tls.secret.name": "corp-tls"}, allowed: "PEM-encoded"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s=%s", tc.key, tc.value), func(t *testing.T) {
			values := map[string]string{tc.key: tc.value}
			for k, v := range tc.extra {
				values[k] = v
			}
			_, err := parse(values)
			if err == nil {
				t.Fatalf("accepted %s=%q", tc.key, tc.value)
			}
			msg := err.Error()
			for _, want := range []string{`config "` + tc.key, tc.allowed} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
			if tc.value != "" && len(tc.value) <= 40 && !strings.Contains(msg, tc.value) && !strings.Contains(msg, fmt.Sprintf("%q", tc.value)) &&
				!strings.HasPrefix(tc.value, "[") {
				t.Errorf("message does not quote the bad value %q:\n%s", tc.value, msg)
			}
		})
	}
}

func TestAllProblemsAreReportedTogether(t *testing.T) {
	_, err := parse(map[string]string{"replicas": "0", "hostname": "x", "gc.schedule": "never"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{`"replicas"`, `"hostname"`, `"gc.schedule"`} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s not reported: %v", key, err)
		}
	}
}

// Pulumi.yaml declares every top-level key: a plain one with its type and the program's default, a
// structured one untyped (Pulumi has no object type for a key of its own), naming each field.
func TestPulumiYamlDeclaresEveryKeyWithTheSameDefault(t *testing.T) {
	raw, err := os.ReadFile("../Pulumi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var project struct {
		Name   string `yaml:"name"`
		Config map[string]struct {
			Type        string `yaml:"type"`
			Default     any    `yaml:"default"`
			Description string `yaml:"description"`
		} `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &project); err != nil {
		t.Fatal(err)
	}
	defaults := Defaults()
	kinds := map[string]Kind{}
	for _, k := range Keys() {
		kinds[k.Path] = k.Kind
	}
	for _, name := range TopLevelKeys() {
		decl, ok := project.Config[name]
		if !ok {
			t.Errorf("Pulumi.yaml does not declare %q", name)
			continue
		}
		if decl.Description == "" {
			t.Errorf("Pulumi.yaml %q lacks a description", name)
		}
		def, plain := defaults[name]
		if !plain || kinds[name] == KindObject {
			if decl.Type != "" {
				t.Errorf("Pulumi.yaml %q is structured and must be untyped, not %s", name, decl.Type)
			}
			for _, field := range strings.Split(fieldsUnder(name), ", ") {
				if field != "" && !strings.Contains(decl.Description, field) {
					t.Errorf("Pulumi.yaml %q: the description does not name the field %s", name, field)
				}
			}
			continue
		}
		got := fmt.Sprint(decl.Default)
		if decl.Type == "array" {
			items, _ := decl.Default.([]any)
			b, err := json.Marshal(items)
			if err != nil {
				t.Fatal(err)
			}
			got = string(b)
			if len(items) == 0 {
				got = "[]"
			}
		}
		if got != def {
			t.Errorf("%q: Pulumi.yaml default %q, program default %q", name, got, def)
		}
	}
	for name := range project.Config {
		if !slices.Contains(TopLevelKeys(), name) {
			t.Errorf("Pulumi.yaml declares %q, which the program does not read", name)
		}
	}
}

// loadStackFile parses a Pulumi.<stack>.yaml of the repository root, refusing keys the program
// does not read.
func loadStackFile(t *testing.T, file string) *Config {
	t.Helper()
	raw, err := os.ReadFile("../" + file)
	if err != nil {
		t.Fatal(err)
	}
	var stack struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &stack); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	for k, v := range stack.Config {
		if strings.HasPrefix(k, "pulumi:") {
			continue // engine settings such as disable-default-providers
		}
		name, ok := strings.CutPrefix(k, "registry-stack:")
		if !ok || !slices.Contains(TopLevelKeys(), name) {
			t.Errorf("%s sets unknown key %q", file, k)
		}
		values[name] = fmt.Sprint(v)
		if _, scalar := v.(string); !scalar {
			b, err := json.Marshal(v) // as the CLI passes a structured key
			if err != nil {
				t.Fatal(err)
			}
			values[name] = string(b)
		}
	}
	// A plaintext credential in the file is refused by Parse (nothing in it is marked secure).
	c, err := Parse(func(name string) (string, bool) {
		v, ok := values[name]
		return v, ok
	}, func(string) bool { return false })
	if err != nil {
		t.Fatalf("%s is invalid: %v", file, err)
	}
	return c
}

func TestMinikubeStackConfigIsValid(t *testing.T) {
	c := loadStackFile(t, "Pulumi.minikube.yaml")
	if c.IngressClassName != "nginx" || c.StorageMode != StorageDynamic || c.StorageClassName != "standard" || c.KubeContext != "minikube" ||
		c.Args().PodSecurityLevel() != registrystack.PodSecurityRestricted {
		t.Errorf("minikube stack does not target minikube's defaults: %+v", c)
	}
}

// The production stack is what the README promises: S3, 3 replicas, no hostPath, a shared Gateway
// and a certificate from a Secret.
func TestProductionStackConfigIsValid(t *testing.T) {
	c := loadStackFile(t, "Pulumi.production.yaml")
	if c.Storage.S3 == nil || c.Storage.Filesystem != nil {
		t.Fatalf("production stack storage = %+v, want the s3 driver only", c.Storage)
	}
	if c.Replicas != 3 {
		t.Errorf("production stack replicas = %d, want 3", c.Replicas)
	}
	if c.Routing.Gateway == nil || c.Routing.Gateway.Existing == nil || c.TLS.Secret == nil {
		t.Errorf("production stack routing/TLS = %+v / %+v, want an existing Gateway and a certificate Secret", c.Routing, c.TLS)
	}
	if c.Storage.S3.Credentials != nil || len(c.Storage.S3.ServiceAccountAnnotations) == 0 {
		t.Errorf("production stack should use a workload identity, no key in the file: %+v", c.Storage.S3)
	}
	if c.KubeContext == "" {
		t.Error("production stack has no kubeContext: it would deploy to whatever context is current")
	}
}

// Each routing and TLS choice becomes exactly one typed mode, with the controller the stack enforces
// its settings with.
func TestRoutingAndTLSAreTyped(t *testing.T) {
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Ingress == nil || c.Routing.Gateway != nil || c.Routing.Controller != routing.ControllerNginx || c.Routing.Ingress.ClassName != "nginx" {
		t.Errorf("default routing = %+v, want ingress on nginx", c.Routing)
	}
	if c.TLS.Generated == nil || c.TLS.Secret != nil || c.TLS.Generated.ValidityHours != 8760 {
		t.Errorf("default TLS = %+v, want generated", c.TLS)
	}

	c, err = parse(map[string]string{"routing.ingress.className": "traefik", "routing.sourceRanges": `["10.0.0.0/8"]`})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Controller != routing.ControllerTraefik || c.Routing.Ingress.TraefikEntryPoint != "websecure" || fmt.Sprint(c.Routing.SourceRanges) != "[10.0.0.0/8]" {
		t.Errorf("traefik routing = %+v %+v", c.Routing, c.Routing.Ingress)
	}

	c, err = parse(map[string]string{"routing.ingress.className": "public", "routing.ingress.controller": "nginx"})
	if err != nil || c.Routing.Controller != routing.ControllerNginx {
		t.Errorf("class public with routing.ingress.controller nginx: %+v, %v", c, err)
	}

	c, err = parse(map[string]string{"routing.ingress.className": "haproxy", "routing.ingress.controller": "other",
		"routing.sourceRanges": `["10.0.0.0/8"]`, "routing.allowUnenforcedSourceRanges": "true"})
	if err != nil || c.Routing.Controller != routing.ControllerOther {
		t.Errorf("explicit opt-out refused: %v", err)
	}

	c, err = parse(map[string]string{"routing.gateway.create.className": "traefik", "routing.gateway.create.listenerPort": "8443"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Ingress != nil || c.Routing.Gateway == nil || c.Routing.Gateway.Existing != nil ||
		*c.Routing.Gateway.Create != (routing.CreatedGateway{ClassName: "traefik", ListenerPort: 8443}) || c.Routing.Controller != routing.ControllerTraefik {
		t.Errorf("created gateway = %+v", c.Routing)
	}

	for class, port := range map[string]int{"traefik": 8443, "eg": 443} {
		c, err = parse(map[string]string{"routing.gateway.create.className": class})
		if err != nil || c.Routing.Gateway.Create.ListenerPort != port {
			t.Errorf("class %s: derived listener port %+v, %v; want %d", class, c.Routing.Gateway, err, port)
		}
	}

	c, err = parse(map[string]string{"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https",
		"routing.gateway.controller": "traefik", "routing.sourceRanges": `["10.0.0.0/8"]`, "namespace": "images"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Gateway.Create != nil || *c.Routing.Gateway.Existing != (routing.ExistingGateway{Name: pulumi.String("edge"), Namespace: pulumi.String("images"), SectionName: "https"}) {
		t.Errorf("existing gateway = %+v (namespace defaults to the stack's)", c.Routing.Gateway.Existing)
	}

	// An existing Gateway without gatewayController: its class's controller, read at deploy time,
	// decides about the ranges (the gateway component refuses them unless Traefik serves it).
	c, err = parse(map[string]string{"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https",
		"routing.sourceRanges": `["10.0.0.0/8"]`})
	if err != nil || c.Routing.Controller != routing.ControllerOfGatewayClass {
		t.Errorf("existing gateway without routing.controller: controller %q, %v; want %q", c.Routing.Controller, err, routing.ControllerOfGatewayClass)
	}

	c, err = parse(map[string]string{"tls.secret.name": "corp-tls"})
	if err != nil || c.TLS.Generated != nil || *c.TLS.Secret != (tlscert.Secret{Name: pulumi.String("corp-tls")}) {
		t.Errorf("secret TLS = %+v, %v", c.TLS, err)
	}
}

// TestEveryErrorAtOnce: a config with many invalid values gets one error naming each key once and
// quoting its value, so a user (and the end-to-end suite's invalid-config runs) fixes them in one go.
func TestEveryErrorAtOnce(t *testing.T) {
	for _, values := range []map[string]string{
		{"replicas": "0", "hostname": "bad host", "storage.filesystem.pvSize": "ten-gigs", "storage.filesystem.mode": "nfs", "gc.schedule": "every day",
			"routing.sourceRanges": `["10.0.0.0"]`, "registry.image": "registry:latest", "tls.generated.validityHours": "1"},
		{"storage.filesystem.mode": "hostPath", "storage.filesystem.pvSize": "2Gi", "storage.filesystem.pvcSize": "3Gi", "registry.image": "registry:2.8.3"},
	} {
		_, err := parse(values)
		if err == nil {
			t.Fatalf("%v accepted", values)
		}
		want := map[string]string{}
		for k, v := range values {
			want[k] = v
		}
		if values["storage.filesystem.mode"] == "hostPath" {
			delete(want, "storage.filesystem.mode")
			delete(want, "storage.filesystem.pvSize")
		}
		if r, ok := want["routing.sourceRanges"]; ok {
			delete(want, "routing.sourceRanges")
			want["routing.sourceRanges[0]"] = strings.Trim(r, `[]"`)
		}
		lines := strings.Split(err.Error(), "\n")[1:]
		if len(lines) != len(want) {
			t.Errorf("%d error lines for %d invalid values:\n%v", len(lines), len(want), err)
		}
		for key, value := range want {
			found := false
			for _, l := range lines {
				if strings.Contains(l, fmt.Sprintf("config %q: %q", key, value)) {
					found = true
				}
			}
			if !found {
				t.Errorf("no line names %s and quotes %q:\n%v", key, value, err)
			}
		}
	}
}

// The mock engine marks these keys secret as the CLI would; it cannot import this package.
func TestTestutilKnowsTheSecretKeys(t *testing.T) {
	var want []string
	for k := range secretPaths {
		want = append(want, k)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(testutil.SecretConfigKeys))
	if !slices.Equal(got, want) {
		t.Errorf("testutil.SecretConfigKeys %v, stackconfig's secret keys %v", got, want)
	}
}

// Each object holds one variant: setting fields of both is refused naming the object, never one
// silently ignored.
func TestOnlyOneVariantOfEachObject(t *testing.T) {
	for _, tc := range []struct {
		values map[string]string
		key    string
	}{
		{map[string]string{"routing.ingress.className": "traefik", "routing.gateway.create.className": "traefik"}, "routing"},
		{map[string]string{"routing.gateway.create.className": "traefik", "routing.gateway.existing.name": "edge"}, "routing.gateway"},
		{map[string]string{"routing.gateway.create.listenerPort": "8443", "routing.gateway.existing.sectionName": "https"}, "routing.gateway"},
		{map[string]string{"tls.generated.validityHours": "48", "tls.secret.name": "corp-tls"}, "tls"},
		{map[string]string{"storage.filesystem.chownHostPath": "true", "storage.s3.bucket": "images", "storage.s3.region": "eu-west-1"}, "storage"},
		{map[string]string{"storage.filesystem.mode": "dynamic", "storage.s3.redirect": "true"}, "storage"},
	} {
		_, err := parse(tc.values)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("config %q: set either", tc.key)) {
			t.Errorf("%v: want both variants of %s refused, got %v", tc.values, tc.key, err)
		}
	}
}

// Every key of the flat layout is refused naming the path it moved to, and a field the program does
// not know is refused by its full path with the fields allowed there.
func TestOldKeysAreRefusedWithTheirNewPath(t *testing.T) {
	for old, path := range Moved() {
		_, err := parse(map[string]string{old: "x"})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("config %q: moved to %s", old, path)) || !strings.Contains(err.Error(), "make migrate-config") {
			t.Errorf("%s: want it refused naming %s, got %v", old, path, err)
		}
		if path == "" {
			t.Errorf("%s moved nowhere", old)
		}
	}
	for _, old := range []string{"ingress", "gateway"} {
		_, err := parse(map[string]string{"routing": old})
		if err == nil || !strings.Contains(err.Error(), `config "routing": is not an object (the routing mode of the flat layout`) {
			t.Errorf("routing=%s: want the old mode refused, got %v", old, err)
		}
	}
	_, err := parse(map[string]string{"storage.s3.buckit": "images", "registry.cpu": "1"})
	for _, want := range []string{`config "storage.s3.buckit": unknown field; allowed in storage.s3: bucket, region`,
		`config "registry.cpu": unknown field; allowed in registry: image, logLevel`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

// A value set with --path arrives typed (true, 3) or as a string holding JSON; both are taken.
func TestPathValuesOfEveryShapeAreTaken(t *testing.T) {
	c, err := Parse(func(name string) (string, bool) {
		v, ok := map[string]string{
			"routing":  `{"sourceRanges":"[\"10.0.0.0/8\"]","ingress":{"className":"traefik"}}`,
			"registry": `{"env":{"PORT_HINT":8080,"DEBUG":true}}`,
			"cache":    `{"enabled":false}`,
			"storage":  `{"filesystem":{"chownHostPath":true,"mode":"hostPath","pvSize":"2Gi","pvcSize":"1Gi"}}`,
			"accounts": `["admin","ci"]`,
		}[name]
		return v, ok
	}, func(string) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.IngressSourceRanges, []string{"10.0.0.0/8"}) || c.CacheEnabled || !c.StorageHostPathChown ||
		c.RegistryEnv["PORT_HINT"] != "8080" || c.RegistryEnv["DEBUG"] != "true" || !slices.Equal(c.Accounts(), []string{"admin", "ci"}) {
		t.Errorf("values not taken: %+v", c)
	}
}

// With the cache off, a cache field would shape nothing: refused by name.
func TestCacheFieldsNeedTheCache(t *testing.T) {
	_, err := parse(map[string]string{"cache.enabled": "false", "cache.maxMemory": "1gb"})
	if err == nil || !strings.Contains(err.Error(), `config "cache.maxMemory": unset while cache.enabled is false`) {
		t.Errorf("got %v", err)
	}
}

// Each routing variant has its own controller: one left from the other variant is a field of two
// variants and refused, never applied to a controller it does not describe (Traefik annotations on
// an nginx class would leave the source ranges unenforced).
func TestAControllerBelongsToItsVariant(t *testing.T) {
	_, err := parse(map[string]string{"routing.gateway.controller": "traefik", "routing.ingress.className": "nginx",
		"routing.sourceRanges": `["10.0.0.0/8"]`})
	if err == nil || !strings.Contains(err.Error(), `config "routing": set either routing.ingress or routing.gateway`) {
		t.Errorf("a gateway controller beside an Ingress: %v, want both variants refused", err)
	}
}

// A list item set with --path arrives as a number when it looks like one, and an item never set
// arrives as null.
func TestListItemsOfEveryShape(t *testing.T) {
	c, err := parse(map[string]string{"accounts": `["admin",1001]`})
	if err != nil || !slices.Equal(c.Accounts(), []string{"admin", "1001"}) {
		t.Errorf("a numeric account: %v, %v", c, err)
	}
	_, err = parse(map[string]string{"accounts": `[null,"ci"]`})
	if err == nil || !strings.Contains(err.Error(), `config "accounts": item 0 is empty`) || !strings.Contains(err.Error(), "'KEY[0]'") {
		t.Errorf("an item never set: %v, want it named with how to set it", err)
	}
	_, err = parse(map[string]string{"storage": `{"s3.bucket":"images"}`})
	if err == nil || !strings.Contains(err.Error(), `config storage["s3.bucket"]: unknown field`) {
		t.Errorf("a field name with a dot: %v, want it refused", err)
	}
	// What `pulumi config rm --path` leaves of the only field of a variant chooses nothing.
	c, err = parse(map[string]string{"storage": `{"s3":{"serviceAccountAnnotations":{}}}`})
	if err != nil || c.Storage.Filesystem == nil {
		t.Errorf("an empty object left in storage.s3: %v, want the default volume", err)
	}
}

package stackconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/routing"
	"github.com/regstack/registry-stack/tlscert"
)

// parse parses values as stored by the CLI; keys of secretKeys count as set with --secret.
func parse(values map[string]string) (*Config, error) {
	return parseWithSecrets(values, secretKeys)
}

func parseWithSecrets(values map[string]string, secret map[string]bool) (*Config, error) {
	return Parse(func(name string) (string, bool) {
		v, ok := values[name]
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
		"replicas":            "5",
		"hostname":            "registry.example.com",
		"extraDnsNames":       `["registry.internal","r.example.org"]`,
		"extraIpAddresses":    `["127.0.0.1","::1"]`,
		"ingressSourceRanges": `["10.0.0.0/8"]`,
		"storageMode":         "dynamic",
		"storageClassName":    "fast-ssd",
		"pvcSize":             "100Gi",
		"pvSize":              "1Gi", // ignored outside hostPath mode
		"gcSchedule":          "@weekly",
		"registryImage":       "ghcr.io/org/registry@sha256:" + strings.Repeat("a", 64),
		"redisMaxMemory":      "1GB",
		"logLevel":            "debug",
		"cacheEnabled":        "false",
		"username":            "ci-bot@example.com",
		"extraAccounts":       `["admin","cluster-eu"]`,
	})
	if err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if c.Replicas != 5 || len(c.ExtraIPAddresses) != 2 || c.CacheEnabled {
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
		{key: "ingressSourceRanges", value: `["10.0.0.0"]`, allowed: "CIDR"},
		{key: "ingressSourceRanges", value: `["10.0.0.0/33"]`, allowed: "CIDR"},
		{key: "ingressClassName", value: "Nginx!", allowed: "DNS-1123"},
		{key: "namespace", value: "Registry", allowed: "DNS-1123 label"},
		{key: "namespace", value: "a.b", allowed: "DNS-1123 label"},
		{key: "certValidityHours", value: "1", allowed: "from 24 to"},
		{key: "pvSize", value: "10 GB", allowed: "Kubernetes quantity"},
		{key: "pvSize", value: "0", allowed: "positive"},
		{key: "pvcSize", value: "lots", allowed: "Kubernetes quantity"},
		{key: "pvcSize", value: "-1Gi", allowed: "positive"},
		{key: "pvcSize", value: "20Gi", extra: map[string]string{"storageMode": "hostPath", "pvSize": "10Gi"}, allowed: "no larger than pvSize"},
		{key: "storageMode", value: "nfs", allowed: "hostPath, dynamic, existing"},
		{key: "storageMode", value: "HostPath", allowed: "hostPath, dynamic, existing"},
		{key: "storageClassName", value: "", extra: map[string]string{"storageMode": "dynamic"}, allowed: "DNS-1123"},
		{key: "storageVolumeName", value: "", extra: map[string]string{"storageMode": "existing"}, allowed: "required when storageMode is existing"},
		{key: "storageHostPath", value: "data/registry", extra: map[string]string{"storageMode": "hostPath"}, allowed: "absolute"},
		{key: "storageHostPath", value: "/", extra: map[string]string{"storageMode": "hostPath"}, allowed: "other than /"},
		{key: "storageHostPath", value: "/data/../etc", extra: map[string]string{"storageMode": "hostPath"}, allowed: "clean"},
		{key: "storageAccessMode", value: "ReadWriteOncePod", allowed: "ReadWriteOnce, ReadWriteMany"},
		{key: "gcSchedule", value: "every sunday", allowed: "cron schedule"},
		{key: "gcSchedule", value: "0 3 * *", allowed: "cron schedule"},
		{key: "gcSchedule", value: "61 3 * * 0", allowed: "cron schedule"},
		{key: "gcSchedule", value: "TZ=UTC 0 3 * * 0", allowed: "without TZ"},
		{key: "gcSuspend", value: "yes", allowed: "true, false"},
		{key: "createNamespace", value: "maybe", allowed: "true, false"},
		{key: "cacheEnabled", value: "on", allowed: "true, false"},
		{key: "username", value: "", allowed: "1-64 characters"},
		{key: "username", value: "ad:min", allowed: "1-64 characters"},
		{key: "username", value: "ad min", allowed: "1-64 characters"},
		{key: "registryImage", value: "registry", allowed: "pinned"},
		{key: "registryImage", value: "registry:latest", allowed: "pinned"},
		{key: "registryImage", value: "registry:2.8.3", allowed: "distribution v3"},
		{key: "storageAccessMode", value: "ReadWriteMany", extra: map[string]string{"storageMode": "hostPath"}, allowed: "hostPath volumes live on one node"},
		{key: "storageHostPathChown", value: "true", allowed: "false unless storageMode is hostPath"},
		// A stack that relied on the old default (hostPath) and set its directory or node.
		{key: "storageMode", value: "dynamic", extra: map[string]string{"storageHostPath": "/data/registry"}, allowed: "the default storageMode is dynamic since 2026-12"},
		{key: "storageMode", value: "dynamic", extra: map[string]string{"storageNodeName": "node-1"}, allowed: "hostPath when storageHostPath or storageNodeName is set"},
		{key: "storageHostPathChown", value: "true", extra: map[string]string{"storageDriver": "s3", "s3Bucket": "images", "s3Region": "eu-west-1"}, allowed: "false with storageDriver s3"},
		{key: "storageHostPathChown", value: "yes", extra: map[string]string{"storageMode": "hostPath"}, allowed: "true, false"},
		{key: "storageNodeName", value: "Node_1", extra: map[string]string{"storageMode": "hostPath"}, allowed: "DNS-1123"},
		{key: "registryImage", value: "Registry:3", allowed: "image reference"},
		{key: "registryImage", value: "registry:3 --privileged", allowed: "image reference"},
		{key: "redisImage", value: "redis:", allowed: "image reference"},
		{key: "gcKubectlImage", value: "http://example.com/kubectl", allowed: "image reference"},
		{key: "redisMaxMemory", value: "64MiB", allowed: "Redis memory size"},
		{key: "redisMaxMemory", value: "0", allowed: "Redis memory size"},
		{key: "redisMaxMemory", value: "-5mb", allowed: "Redis memory size"},
		{key: "redisCpuRequest", value: "fast", allowed: "Kubernetes quantity"},
		{key: "redisMemoryRequest", value: "1x", allowed: "Kubernetes quantity"},
		{key: "registryCpuRequest", value: "0", allowed: "positive"},
		{key: "registryMemoryRequest", value: "128MB!", allowed: "Kubernetes quantity"},
		{key: "registryMemoryLimit", value: "64Mi", extra: map[string]string{"registryMemoryRequest": "128Mi"}, allowed: "at least registryMemoryRequest"},
		{key: "logLevel", value: "verbose", allowed: "error, warn, info, debug"},
		{key: "serviceType", value: "ExternalName", allowed: "ClusterIP, NodePort, LoadBalancer"},
		{key: "kubeContext", value: "my context", allowed: "without spaces"},
		{key: "extraAccounts", value: `["ci","ci"]`, allowed: "not used before"},
		{key: "extraAccounts", value: `["admin"]`, allowed: "not used before"},
		{key: "extraAccounts", value: `["ci:bot"]`, allowed: "1-64 characters"},
		{key: "extraAccounts", value: `[""]`, allowed: "1-64 characters"},
		{key: "extraAccounts", value: `["` + strings.Repeat("a", 41) + `"]`, allowed: "at most 40"},
		{key: "extraAccounts", value: `ci`, allowed: "list of strings"},
		// Routing and TLS (issue 8).
		{key: "routing", value: "loadbalancer", allowed: "ingress, gateway"},
		{key: "ingressController", value: "haproxy", allowed: "nginx, traefik, other"},
		{key: "ingressController", value: "", extra: map[string]string{"ingressClassName": "public"}, allowed: `"public" is not a class the stack knows`},
		{key: "ingressController", value: "other", extra: map[string]string{"ingressSourceRanges": `["10.0.0.0/8"]`}, allowed: "cannot enforce 10.0.0.0/8"},
		{key: "allowUnenforcedSourceRanges", value: "true", allowed: "false with controller nginx"},
		{key: "allowUnenforcedSourceRanges", value: "sure", allowed: "true, false"},
		{key: "traefikEntryPoint", value: "web secure", extra: map[string]string{"ingressClassName": "traefik"}, allowed: "TLS entry point"},
		{key: "traefikEntryPoint", value: "", extra: map[string]string{"ingressClassName": "traefik"}, allowed: "TLS entry point"},
		{key: "gatewayClassName", value: "", extra: map[string]string{"routing": "gateway"}, allowed: "required when routing is gateway"},
		{key: "gatewayClassName", value: "Traefik", extra: map[string]string{"routing": "gateway"}, allowed: "DNS-1123"},
		{key: "gatewayClassName", value: "traefik", allowed: "empty with routing ingress"},
		{key: "gatewayName", value: "edge", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "not both"},
		{key: "gatewayName", value: "Edge", extra: map[string]string{"routing": "gateway", "gatewaySectionName": "https"}, allowed: "DNS-1123"},
		{key: "gatewaySectionName", value: "", extra: map[string]string{"routing": "gateway", "gatewayName": "edge"}, allowed: "plain-HTTP ones included"},
		{key: "gatewaySectionName", value: "https", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "for an existing Gateway"},
		{key: "gatewayNamespace", value: "Platform", extra: map[string]string{"routing": "gateway", "gatewayName": "edge", "gatewaySectionName": "https"}, allowed: "DNS-1123 label"},
		{key: "gatewayListenerPort", value: "-1", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "from 1 to 65535"},
		{key: "gatewayListenerPort", value: "70000", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "from 1 to 65535"},
		{key: "gatewayController", value: "nginx", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "traefik, other"},
		{key: "gatewayController", value: "other", extra: map[string]string{"routing": "gateway", "gatewayClassName": "eg", "ingressSourceRanges": `["10.0.0.0/8"]`}, allowed: "cannot enforce"},
		{key: "allowUnenforcedSourceRanges", value: "true", extra: map[string]string{"routing": "gateway", "gatewayName": "edge", "gatewaySectionName": "https", "ingressSourceRanges": `["10.0.0.0/8"]`}, allowed: "unless gatewayController is other"},
		{key: "ingressController", value: "traefik", extra: map[string]string{"routing": "gateway", "gatewayClassName": "traefik"}, allowed: "empty with routing gateway"},
		{key: "tlsSource", value: "acme", allowed: "generated, secret"},
		{key: "tlsSecretName", value: "registry-tls", extra: map[string]string{"tlsSource": "secret"}, allowed: "the generated certificate's Secret"},
		{key: "gatewayListenerPort", value: "8443", allowed: "0 with routing ingress"},
		{key: "gatewayListenerPort", value: "8443", extra: map[string]string{"routing": "gateway", "gatewayName": "edge", "gatewaySectionName": "https"}, allowed: "0 with an existing Gateway"},
		{key: "gatewayController", value: "", extra: map[string]string{"routing": "gateway", "gatewayClassName": "eg", "ingressSourceRanges": `["10.0.0.0/8"]`}, allowed: "traefik while ingressSourceRanges is set"},
		{key: "tlsSecretName", value: "", extra: map[string]string{"tlsSource": "secret"}, allowed: "required when tlsSource is secret"},
		{key: "tlsSecretName", value: "Corp_TLS", extra: map[string]string{"tlsSource": "secret"}, allowed: "DNS-1123"},
		{key: "tlsSecretName", value: "corp-tls", allowed: "empty with tlsSource generated"},
		{key: "tlsCaCertPem", value: "not a certificate", extra: map[string]string{"tlsSource": "secret", "tlsSecretName": "corp-tls"}, allowed: "PEM-encoded CA certificates"},
		{key: "tlsCaCertPem", value: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", extra: map[string]string{"tlsSource": "secret", "tlsSecretName": "corp-tls"}, allowed: "PEM-encoded"},
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
	_, err := parse(map[string]string{"replicas": "0", "hostname": "x", "gcSchedule": "never"})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, key := range []string{`"replicas"`, `"hostname"`, `"gcSchedule"`} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("%s not reported: %v", key, err)
		}
	}
}

// Pulumi.yaml declares every key with the same default the program applies, and nothing else.
var objectKeys = map[string]bool{"monitoring": true, "autoscaling": true, "placement": true, "registryEnv": true}

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
	for name, def := range defaults {
		decl, ok := project.Config[name]
		if !ok {
			t.Errorf("Pulumi.yaml does not declare %q", name)
			continue
		}
		// The object keys are untyped: Pulumi has no object type for a key of its own.
		if decl.Description == "" || (decl.Type == "") != objectKeys[name] {
			t.Errorf("Pulumi.yaml %q lacks a description, or a type (only the object keys have none)", name)
		}
		got := fmt.Sprint(decl.Default)
		if decl.Type == "array" {
			got = "[]"
			if items, _ := decl.Default.([]any); len(items) > 0 {
				got = fmt.Sprint(items)
			}
		}
		if got != def {
			t.Errorf("%q: Pulumi.yaml default %q, program default %q", name, got, def)
		}
	}
	for name := range project.Config {
		if _, ok := defaults[name]; !ok {
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
	defaults := Defaults()
	for k, v := range stack.Config {
		if strings.HasPrefix(k, "pulumi:") {
			continue // engine settings such as disable-default-providers
		}
		name, ok := strings.CutPrefix(k, "registry-stack:")
		if _, known := defaults[name]; !ok || !known {
			t.Errorf("%s sets unknown key %q", file, k)
		}
		if secretKeys[name] {
			t.Errorf("%s holds %s in plain text: it must be set with --secret (and then lives encrypted in the file)", file, k)
		}
		values[name] = fmt.Sprint(v)
		if list, isList := v.([]any); isList {
			b, err := json.Marshal(list)
			if err != nil {
				t.Fatal(err)
			}
			values[name] = string(b) // as the CLI stores it
		}
	}
	c, err := parse(values)
	if err != nil {
		t.Fatalf("%s rejected: %v", file, err)
	}
	return c
}

// The minikube stack file only sets keys the program knows, to values it accepts.
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

	c, err = parse(map[string]string{"ingressClassName": "traefik", "ingressSourceRanges": `["10.0.0.0/8"]`})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Controller != routing.ControllerTraefik || c.Routing.Ingress.TraefikEntryPoint != "websecure" || fmt.Sprint(c.Routing.SourceRanges) != "[10.0.0.0/8]" {
		t.Errorf("traefik routing = %+v %+v", c.Routing, c.Routing.Ingress)
	}

	c, err = parse(map[string]string{"ingressClassName": "public", "ingressController": "nginx"})
	if err != nil || c.Routing.Controller != routing.ControllerNginx {
		t.Errorf("class public with ingressController nginx: %+v, %v", c, err)
	}

	c, err = parse(map[string]string{"ingressClassName": "haproxy", "ingressController": "other",
		"ingressSourceRanges": `["10.0.0.0/8"]`, "allowUnenforcedSourceRanges": "true"})
	if err != nil || c.Routing.Controller != routing.ControllerOther {
		t.Errorf("explicit opt-out refused: %v", err)
	}

	c, err = parse(map[string]string{"routing": "gateway", "gatewayClassName": "traefik", "gatewayListenerPort": "8443"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Ingress != nil || c.Routing.Gateway == nil || c.Routing.Gateway.Existing != nil ||
		*c.Routing.Gateway.Create != (routing.CreatedGateway{ClassName: "traefik", ListenerPort: 8443}) || c.Routing.Controller != routing.ControllerTraefik {
		t.Errorf("created gateway = %+v", c.Routing)
	}

	for class, port := range map[string]int{"traefik": 8443, "eg": 443} {
		c, err = parse(map[string]string{"routing": "gateway", "gatewayClassName": class})
		if err != nil || c.Routing.Gateway.Create.ListenerPort != port {
			t.Errorf("class %s: derived listener port %+v, %v; want %d", class, c.Routing.Gateway, err, port)
		}
	}

	c, err = parse(map[string]string{"routing": "gateway", "gatewayName": "edge", "gatewaySectionName": "https",
		"gatewayController": "traefik", "ingressSourceRanges": `["10.0.0.0/8"]`, "namespace": "images"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Gateway.Create != nil || *c.Routing.Gateway.Existing != (routing.ExistingGateway{Name: "edge", Namespace: "images", SectionName: "https"}) {
		t.Errorf("existing gateway = %+v (namespace defaults to the stack's)", c.Routing.Gateway.Existing)
	}

	// An existing Gateway without gatewayController: its class's controller, read at deploy time,
	// decides about the ranges (the gateway component refuses them unless Traefik serves it).
	c, err = parse(map[string]string{"routing": "gateway", "gatewayName": "edge", "gatewaySectionName": "https",
		"ingressSourceRanges": `["10.0.0.0/8"]`})
	if err != nil || c.Routing.Controller != routing.ControllerOfGatewayClass {
		t.Errorf("existing gateway without gatewayController: controller %q, %v; want %q", c.Routing.Controller, err, routing.ControllerOfGatewayClass)
	}

	c, err = parse(map[string]string{"tlsSource": "secret", "tlsSecretName": "corp-tls"})
	if err != nil || c.TLS.Generated != nil || *c.TLS.Secret != (tlscert.Secret{Name: "corp-tls"}) {
		t.Errorf("secret TLS = %+v, %v", c.TLS, err)
	}
}

// TestEveryErrorAtOnce: a config with many invalid values gets one error naming each key once and
// quoting its value, so a user (and the end-to-end suite's invalid-config runs) fixes them in one go.
func TestEveryErrorAtOnce(t *testing.T) {
	for _, values := range []map[string]string{
		{"replicas": "0", "hostname": "bad host", "pvSize": "ten-gigs", "storageMode": "nfs", "gcSchedule": "every day",
			"username": "", "ingressSourceRanges": `["10.0.0.0"]`, "registryImage": "registry:latest", "routing": "loadbalancer", "tlsSource": "acme"},
		{"storageMode": "hostPath", "pvSize": "2Gi", "pvcSize": "3Gi", "registryImage": "registry:2.8.3"},
	} {
		_, err := parse(values)
		if err == nil {
			t.Fatalf("%v accepted", values)
		}
		want := map[string]string{}
		for k, v := range values {
			want[k] = v
		}
		if values["storageMode"] == "hostPath" {
			delete(want, "storageMode")
			delete(want, "pvSize")
		}
		if r, ok := want["ingressSourceRanges"]; ok {
			delete(want, "ingressSourceRanges")
			want["ingressSourceRanges[0]"] = strings.Trim(r, `[]"`)
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
	for k := range secretKeys {
		want = append(want, k)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(testutil.SecretConfigKeys))
	if !slices.Equal(got, want) {
		t.Errorf("testutil.SecretConfigKeys %v, stackconfig's secret keys %v", got, want)
	}
}

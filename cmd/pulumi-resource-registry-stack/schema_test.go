package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"sort"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

var update = flag.Bool("update", false, "rewrite schema.json from Pulumi.yaml and the component's outputs")

// configKey is one key of Pulumi.yaml's config section.
type configKey struct {
	Type        string `yaml:"type"`
	Description string `yaml:"description"`
	Items       *struct {
		Type string `yaml:"type"`
	} `yaml:"items"`
}

type property map[string]any

var anyRef = property{"$ref": "pulumi.json#/Any"}

// inputProperty is the schema of a config key: the types Pulumi.yaml declares; the untyped
// structured keys (monitoring, autoscaling) and the items of object lists are any JSON.
func inputProperty(t *testing.T, name string, k configKey) property {
	t.Helper()
	var p property
	switch k.Type {
	case "string", "integer", "boolean":
		p = property{"type": k.Type}
	case "array":
		items := anyRef
		if k.Items != nil && k.Items.Type == "string" {
			items = property{"type": "string"}
		}
		p = property{"type": "array", "items": items}
	case "":
		p = property{"$ref": anyRef["$ref"]}
	default:
		t.Fatalf("Pulumi.yaml config %s: type %q has no schema mapping", name, k.Type)
	}
	p["description"] = k.Description
	if stackconfig.IsSecretKey(name) {
		p["secret"] = true
	}
	return p
}

// outputTypes are the outputs that are not strings.
var outputTypes = map[string]property{
	"passwords":             {"type": "object", "additionalProperties": property{"type": "string"}},
	"mirrorPasswords":       {"type": "object", "additionalProperties": property{"type": "string"}},
	"mirrorContainerdHosts": {"type": "object", "additionalProperties": property{"type": "string"}},
	"mirrors":               {"type": "object", "additionalProperties": anyRef},
	"metricsServiceNames":   {"type": "array", "items": property{"type": "string"}},
}

func generate(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("../../Pulumi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var project struct {
		Description string               `yaml:"description"`
		Config      map[string]configKey `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &project); err != nil {
		t.Fatalf("Pulumi.yaml: %v", err)
	}
	inputs := map[string]property{}
	for name, k := range project.Config {
		if name == "kubeContext" {
			// The caller's Kubernetes provider takes its place (the providers option).
			continue
		}
		inputs[name] = inputProperty(t, name, k)
	}
	outputs := map[string]property{}
	for name, desc := range registrystack.OutputDescriptions {
		p := property{"type": "string"}
		if typ, ok := outputTypes[name]; ok {
			p = property{}
			for k, v := range typ {
				p[k] = v
			}
		}
		p["description"] = desc
		if name == "password" || name == "passwords" || name == "mirrorPasswords" {
			p["secret"] = true
		}
		outputs[name] = p
	}
	required := slices.Clone(registrystack.AlwaysOutputs)
	sort.Strings(required)
	schema := map[string]any{
		"name":        registrystack.Package,
		"displayName": "registry-stack",
		"description": project.Description,
		"resources": map[string]any{
			registrystack.Type: map[string]any{
				"isComponent": true,
				"description": "A private Docker/OCI registry on Kubernetes. Inputs are the stack config keys of registry-stack " +
					"(same names, defaults and validation); pass the Kubernetes provider with the providers option.",
				"inputProperties": inputs,
				"properties":      outputs,
				"required":        required,
			},
		},
	}
	out, err := json.MarshalIndent(schema, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

// TestSchemaIsGenerated keeps schema.json equal to what Pulumi.yaml and the outputs say.
func TestSchemaIsGenerated(t *testing.T) {
	want := generate(t)
	if *update {
		if err := os.WriteFile("schema.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(schema, want) {
		t.Fatal("schema.json is stale: run `go test ./cmd/pulumi-resource-registry-stack -update` (and rebuild the provider)")
	}
}

// TestSchemaInputsAreTheConfigKeys: the component takes exactly the stack's config keys (but the
// provider's context), so a key added to the stack reaches every language.
func TestSchemaInputsAreTheConfigKeys(t *testing.T) {
	var s struct {
		Resources map[string]struct {
			InputProperties map[string]any `json:"inputProperties"`
		} `json:"resources"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	inputs := s.Resources[registrystack.Type].InputProperties
	for k := range stackconfig.Defaults() {
		if _, ok := inputs[k]; !ok && k != "kubeContext" {
			t.Errorf("config key %s is no input of the schema", k)
		}
	}
	if len(inputs) != len(stackconfig.Defaults())-1 {
		t.Errorf("%d inputs, want %d (the config keys but kubeContext)", len(inputs), len(stackconfig.Defaults())-1)
	}
}

// outputKeys runs the component with mocks and returns its output names.
func outputKeys(t *testing.T, config map[string]string) []string {
	t.Helper()
	var keys []string
	testutil.MustRun(t, config, func(ctx *pulumi.Context) error {
		cfg, err := stackconfig.Load(ctx)
		if err != nil {
			return err
		}
		k8s, err := kubernetes.NewProvider(ctx, "k8s", &kubernetes.ProviderArgs{})
		if err != nil {
			return err
		}
		comp, err := registrystack.NewRegistryStack(ctx, "registry", cfg.Args(), pulumi.Provider(k8s))
		if err != nil {
			return err
		}
		for k := range comp.Outputs {
			keys = append(keys, k)
		}
		return nil
	})
	sort.Strings(keys)
	return keys
}

// TestOutputsAreDocumented: every output the component can have is in the schema, the ones every
// stack has are required, and nothing else is.
func TestOutputsAreDocumented(t *testing.T) {
	minimal := outputKeys(t, map[string]string{"storageDriver": "s3", "s3Bucket": "registry-images", "s3Region": "us-east-1", "cacheEnabled": "false"})
	full := outputKeys(t, map[string]string{
		"storageMode": "hostPath", "autoscaling": `{}`,
		"monitoring": `{"serviceMonitor":{"enabled":true}}`,
		"mirrors":    `[{"name":"ghcr","upstream":"https://ghcr.io"}]`,
	})
	if !slices.Equal(minimal, slices.Sorted(slices.Values(registrystack.AlwaysOutputs))) {
		t.Errorf("outputs of a minimal stack %v, want AlwaysOutputs %v", minimal, registrystack.AlwaysOutputs)
	}
	var documented []string
	for k := range registrystack.OutputDescriptions {
		documented = append(documented, k)
	}
	sort.Strings(documented)
	if !slices.Equal(full, documented) {
		t.Errorf("outputs of a stack with every feature %v, want OutputDescriptions' %v", full, documented)
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/registrystack"
	"github.com/regstack/registry-stack/stackconfig"
)

var update = flag.Bool("update", false, "rewrite schema.json from Pulumi.yaml and the component's outputs")

type property map[string]any

var anyRef = property{"$ref": "pulumi.json#/Any"}

// typeToken names the schema type of a structured config path: storage.s3 -> StorageS3.
func typeToken(path string) string {
	name := ""
	for _, seg := range strings.Split(path, ".") {
		name += strings.ToUpper(seg[:1]) + seg[1:]
	}
	return registrystack.Package + ":index:" + name
}

// leafProperty is the schema of one config path by its kind; the objects whose fields the README
// describes (mirrors' items, monitoring, autoscaling, placement) are any JSON.
func leafProperty(t *testing.T, k stackconfig.Key) property {
	t.Helper()
	var p property
	switch k.Kind {
	case stackconfig.KindString, stackconfig.KindInteger, stackconfig.KindBoolean:
		p = property{"type": string(k.Kind)}
	case stackconfig.KindList:
		p = property{"type": "array", "items": property{"type": "string"}}
	case stackconfig.KindMap:
		p = property{"type": "object", "additionalProperties": property{"type": "string"}}
	case stackconfig.KindObjects:
		p = property{"type": "array", "items": anyRef}
	case stackconfig.KindObject:
		p = property{"$ref": anyRef["$ref"]}
	default:
		t.Fatalf("config %s: kind %q has no schema mapping", k.Path, k.Kind)
	}
	p["description"] = k.Doc
	if k.Default != "" && k.Default != "[]" && k.Default != "{}" {
		// Documented, not a schema default: an SDK would fill it in, and a field of a variant not
		// chosen (or of a switched-off cache) is refused.
		p["description"] = k.Doc + " Default: " + k.Default + "."
	}
	if stackconfig.IsSecretKey(k.Path) {
		p["secret"] = true
	}
	return p
}

// objectTypes builds the schema types of the structured keys from the config paths: each object
// path becomes a type with its fields, so every language's SDK gets the same structure as the stack
// config (and the component's Args).
func objectTypes(t *testing.T, descriptions map[string]string) (inputs map[string]property, types map[string]any) {
	t.Helper()
	inputs, types = map[string]property{}, map[string]any{}
	props := map[string]map[string]property{}
	add := func(parent, field string, p property) {
		if parent == "" {
			inputs[field] = p
			return
		}
		if props[parent] == nil {
			props[parent] = map[string]property{}
		}
		props[parent][field] = p
	}
	for _, k := range stackconfig.Keys() {
		if k.Path == "kubeContext" {
			// The caller's Kubernetes provider takes its place (the providers option).
			continue
		}
		segs := strings.Split(k.Path, ".")
		for i := range segs[:len(segs)-1] {
			obj := strings.Join(segs[:i+1], ".")
			parent := strings.Join(segs[:i], ".")
			desc := descriptions[obj]
			if desc == "" {
				desc = "The fields of " + obj + "."
			}
			add(parent, segs[i], property{"$ref": "#/types/" + typeToken(obj), "description": desc})
		}
		add(strings.Join(segs[:len(segs)-1], "."), segs[len(segs)-1], leafProperty(t, k))
	}
	for obj, fields := range props {
		types[typeToken(obj)] = map[string]any{"type": "object", "properties": fields}
	}
	return inputs, types
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
		Description string `yaml:"description"`
		Config      map[string]struct {
			Description string `yaml:"description"`
		} `yaml:"config"`
	}
	if err := yaml.Unmarshal(raw, &project); err != nil {
		t.Fatalf("Pulumi.yaml: %v", err)
	}
	descriptions := map[string]string{}
	for name, k := range project.Config {
		descriptions[name] = k.Description
	}
	inputs, types := objectTypes(t, descriptions)
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
				"description": "A private Docker/OCI registry on Kubernetes. Inputs are the stack config of registry-stack " +
					"(same names, structure, defaults and validation); pass the Kubernetes provider with the providers option.",
				"inputProperties": inputs,
				"properties":      outputs,
				"required":        required,
			},
		},
		"types": types,
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

// TestSchemaInputsAreTheConfigPaths: the component takes exactly the stack's config paths (but the
// provider's context), each reachable through the schema's types, so a path added to the stack
// reaches every language.
func TestSchemaInputsAreTheConfigPaths(t *testing.T) {
	var s struct {
		Resources map[string]struct {
			InputProperties map[string]map[string]any `json:"inputProperties"`
		} `json:"resources"`
		Types map[string]struct {
			Properties map[string]map[string]any `json:"properties"`
		} `json:"types"`
	}
	if err := json.Unmarshal(schema, &s); err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(prefix string, props map[string]map[string]any)
	walk = func(prefix string, props map[string]map[string]any) {
		for name, p := range props {
			ref, _ := p["$ref"].(string)
			if typ, ok := strings.CutPrefix(ref, "#/types/"); ok {
				walk(prefix+name+".", s.Types[typ].Properties)
				continue
			}
			paths = append(paths, prefix+name)
		}
	}
	walk("", s.Resources[registrystack.Type].InputProperties)
	var want []string
	for _, k := range stackconfig.Keys() {
		if k.Path != "kubeContext" {
			want = append(want, k.Path)
		}
	}
	slices.Sort(paths)
	slices.Sort(want)
	if !slices.Equal(paths, want) {
		t.Errorf("schema input paths %v,\nconfig paths %v", paths, want)
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
	minimal := outputKeys(t, map[string]string{"storage.s3.bucket": "registry-images", "storage.s3.region": "us-east-1", "cache.enabled": "false"})
	full := outputKeys(t, map[string]string{
		"storage.filesystem.mode": "hostPath", "autoscaling": `{}`,
		"monitoring":  `{"serviceMonitor":{"enabled":true}}`,
		"mirrors":     `[{"name":"ghcr","upstream":"https://ghcr.io"}]`,
		"auth":        `{"token":{}}`,
		"clusterPull": `{"account":"ci","namespaces":["apps"],"nodeAgent":{}}`,
		"accounts":    `["admin","ci"]`,
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

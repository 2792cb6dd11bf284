// Package testutil runs Pulumi programs against an in-memory mock engine and records every resource
// registration, so tests can assert on kinds, names, parents, options and (secret) inputs.
package testutil

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// MockCertNotAfter is every mocked certificate's end of validity.
const MockCertNotAfter = "2027-12-01T00:00:00Z"

// SecretConfigKeys are the config paths Run stores as `pulumi config set --secret --path` would: the
// credential paths stackconfig refuses in plaintext (its tests keep the two lists equal; this
// package cannot import stackconfig, whose packages' tests use it).
var SecretConfigKeys = []string{"s3AccessKeyId", "s3SecretAccessKey", "tokenServerExtraConfig"}

// Nest turns config values given by path (storage.s3.bucket) into top-level keys as the engine
// passes them to a program, a structured one as JSON; secret tells which keys hold a path of
// SecretConfigKeys or a mirror's password (a structured key is secret as a whole when any of its
// fields is).
func Nest(config map[string]string) (top map[string]string, secret map[string]bool) {
	top, secret = map[string]string{}, map[string]bool{}
	objects := map[string]map[string]any{}
	for path, v := range config {
		parts := strings.Split(path, ".")
		if slices.Contains(SecretConfigKeys, path) || (path == "mirrors" && strings.Contains(v, `"password"`)) {
			secret[parts[0]] = true
		}
		if len(parts) == 1 {
			top[path] = v
			continue
		}
		if objects[parts[0]] == nil {
			objects[parts[0]] = map[string]any{}
		}
		m := objects[parts[0]]
		for _, part := range parts[1 : len(parts)-1] {
			next, ok := m[part].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[part] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = v
	}
	for name, m := range objects {
		raw, err := json.Marshal(m)
		if err != nil {
			panic(fmt.Sprintf("testutil: config %s: %v", name, err))
		}
		top[name] = string(raw)
	}
	return top, secret
}

// Project and Stack of every mocked run.
const (
	Project = "registry-stack"
	Stack   = "unit"
)

// Resource is one registration seen by the mock engine.
type Resource struct {
	Type           string
	Name           string
	Custom         bool
	Parent         string // URN of the parent
	Provider       string
	RetainOnDelete bool
	Protect        bool
	// Read: a lookup of an existing object (Get...), not a resource the program creates.
	Read bool
	// AliasParents are the parent URNs of the resource's aliases (renames keep the state);
	// AliasNoParent says, for each alias, that it had no parent (it was at the stack's root). An
	// alias that sets neither keeps the current parent.
	AliasParents  []string
	AliasNoParent []bool
	Inputs        resource.PropertyMap
	// Dependencies are the URNs the resource depends on (through its inputs and dependsOn).
	Dependencies []string
}

// Mocks implements pulumi.MockResourceMonitor and computes the outputs real providers would.
type Mocks struct {
	mu        sync.Mutex
	resources []Resource
}

// NewResource records the registration and returns inputs plus computed outputs.
func (m *Mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	r := Resource{Type: args.TypeToken, Name: args.Name, Custom: args.Custom, Provider: args.Provider, Inputs: args.Inputs}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Parent, r.RetainOnDelete, r.Protect = rpc.GetParent(), rpc.GetRetainOnDelete(), rpc.GetProtect()
		r.Dependencies = rpc.GetDependencies()
		for _, a := range rpc.GetAliases() {
			if spec := a.GetSpec(); spec != nil {
				r.AliasParents = append(r.AliasParents, spec.GetParentUrn())
				r.AliasNoParent = append(r.AliasNoParent, spec.GetNoParent())
			}
		}
	}
	if rpc := args.ReadRPC; rpc != nil {
		r.Parent, r.Read = rpc.GetParent(), true
	}
	m.mu.Lock()
	m.resources = append(m.resources, r)
	m.mu.Unlock()

	outs := args.Inputs.Copy()
	secret := func(s string) resource.PropertyValue { return resource.MakeSecret(resource.NewStringProperty(s)) }
	switch args.TypeToken {
	case "random:index/randomPassword:RandomPassword":
		outs["result"] = secret("mock-password-" + args.Name)
		outs["bcryptHash"] = secret("$2a$10$mockbcrypthashfor" + args.Name)
	case "tls:index/privateKey:PrivateKey":
		outs["privateKeyPem"] = secret("-----BEGIN EC PRIVATE KEY-----\nmock-" + args.Name + "\n-----END EC PRIVATE KEY-----\n")
		outs["publicKeyPem"] = resource.NewStringProperty("-----BEGIN PUBLIC KEY-----\nmock-" + args.Name + "\n-----END PUBLIC KEY-----\n")
	case "tls:index/selfSignedCert:SelfSignedCert", "tls:index/locallySignedCert:LocallySignedCert":
		outs["certPem"] = resource.NewStringProperty("-----BEGIN CERTIFICATE-----\nmock-" + args.Name + "\n-----END CERTIFICATE-----\n")
		outs["validityEndTime"] = resource.NewStringProperty(MockCertNotAfter)
	case "tls:index/certRequest:CertRequest":
		outs["certRequestPem"] = resource.NewStringProperty("-----BEGIN CERTIFICATE REQUEST-----\nmock-" + args.Name + "\n-----END CERTIFICATE REQUEST-----\n")
	case "kubernetes:storage.k8s.io/v1:StorageClass":
		if args.ID != "" { // a read of an existing class, as the cluster would answer it
			outs["metadata"] = resource.NewObjectProperty(resource.PropertyMap{"name": resource.NewStringProperty(args.ID)})
			outs["provisioner"] = resource.NewStringProperty("mock.io/" + args.ID)
			outs["reclaimPolicy"] = resource.NewStringProperty("Delete")
			outs["volumeBindingMode"] = resource.NewStringProperty("WaitForFirstConsumer")
			if args.ID == "expandable" {
				outs["allowVolumeExpansion"] = resource.NewBoolProperty(true)
			}
		}
	case "kubernetes:gateway.networking.k8s.io/v1:Gateway":
		if args.ID != "" { // a read of an existing Gateway: one HTTPS and one plain-HTTP listener
			listener := func(name, protocol string) resource.PropertyValue {
				return resource.NewObjectProperty(resource.PropertyMap{
					"name": resource.NewStringProperty(name), "protocol": resource.NewStringProperty(protocol),
				})
			}
			// Its class: traefik, unless the Gateway's name ends in -<class>.
			class := "traefik"
			name := string(args.ID)[strings.LastIndex(string(args.ID), "/")+1:]
			if i := strings.LastIndex(name, "-"); i >= 0 {
				class = name[i+1:]
			}
			outs["spec"] = resource.NewObjectProperty(resource.PropertyMap{
				"gatewayClassName": resource.NewStringProperty(class),
				"listeners":        resource.NewArrayProperty([]resource.PropertyValue{listener("websecure", "HTTPS"), listener("web", "HTTP")}),
			})
		}
	case "kubernetes:gateway.networking.k8s.io/v1:GatewayClass":
		if args.ID != "" { // a read: Traefik's controller for class traefik, another one otherwise
			controller := "example.com/" + string(args.ID)
			if args.ID == "traefik" {
				controller = "traefik.io/gateway-controller"
			}
			outs["spec"] = resource.NewObjectProperty(resource.PropertyMap{"controllerName": resource.NewStringProperty(controller)})
		}
	case "kubernetes:core/v1:PersistentVolumeClaim":
		// The provider waits for the claim to bind; a dynamic claim then names its new PV.
		spec := outs["spec"].ObjectValue()
		if _, ok := spec["volumeName"]; !ok {
			spec["volumeName"] = resource.NewStringProperty("pvc-mock-" + args.Name)
		}
	}
	return args.Name + "_id", outs, nil
}

// Call answers invokes by echoing their arguments.
func (m *Mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

// Resources returns every registration so far.
func (m *Mocks) Resources() []Resource {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Resource(nil), m.resources...)
}

// OfType returns the registrations of one type token.
func (m *Mocks) OfType(typ string) []Resource {
	var out []Resource
	for _, r := range m.Resources() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// Get returns the one registration of type typ and logical name name, failing the test otherwise.
func (m *Mocks) Get(t testing.TB, typ, name string) Resource {
	t.Helper()
	for _, r := range m.Resources() {
		if r.Type == typ && r.Name == name {
			return r
		}
	}
	t.Fatalf("no %s named %q registered; have: %s", typ, name, m.summary())
	return Resource{}
}

func (m *Mocks) summary() string {
	var parts []string
	for _, r := range m.Resources() {
		parts = append(parts, r.Type+"/"+r.Name)
	}
	return strings.Join(parts, ", ")
}

// Run runs program with the mock engine and the given stack config (paths without the project
// prefix, values as `pulumi config set --path` stores them).
func Run(t testing.TB, config map[string]string, program pulumi.RunFunc, opts ...pulumi.RunOption) (*Mocks, error) {
	t.Helper()
	top, secret := Nest(config)
	full := make(map[string]string, len(top))
	secretKeys := []string{}
	for k, v := range top {
		full[Project+":"+k] = v
		if secret[k] {
			secretKeys = append(secretKeys, Project+":"+k)
		}
	}
	raw, err := json.Marshal(full)
	if err != nil {
		t.Fatalf("marshal config: %v", err)
	}
	t.Setenv("PULUMI_CONFIG", string(raw))
	rawKeys, err := json.Marshal(secretKeys)
	if err != nil {
		t.Fatalf("marshal secret keys: %v", err)
	}
	t.Setenv(pulumi.EnvConfigSecretKeys, string(rawKeys))
	m := &Mocks{}
	err = pulumi.RunErr(program, append([]pulumi.RunOption{pulumi.WithMocks(Project, Stack, m)}, opts...)...)
	return m, err
}

// Preview runs the program as `pulumi preview` does: outputs of resources still to be created are
// unknown there.
func Preview(info *pulumi.RunInfo) { info.DryRun = true }

// MustRun is Run that fails the test on a program error.
func MustRun(t testing.TB, config map[string]string, program pulumi.RunFunc) *Mocks {
	t.Helper()
	m, err := Run(t, config, program)
	if err != nil {
		t.Fatalf("program failed: %v", err)
	}
	return m
}

// Lookup walks an input tree by object keys and array indexes (secrets and outputs unwrapped) and
// returns the plain Go value (string, float64, bool, []any, map[string]any) or nil when absent.
func (r Resource) Lookup(path ...any) any {
	v := resource.NewObjectProperty(r.Inputs)
	for _, p := range path {
		v = unwrap(v)
		switch k := p.(type) {
		case string:
			if !v.IsObject() {
				return nil
			}
			next, ok := v.ObjectValue()[resource.PropertyKey(k)]
			if !ok {
				return nil
			}
			v = next
		case int:
			if !v.IsArray() || k >= len(v.ArrayValue()) {
				return nil
			}
			v = v.ArrayValue()[k]
		default:
			panic(fmt.Sprintf("Lookup: path element %v is neither string nor int", p))
		}
	}
	return Plain(v)
}

// String is Lookup for a string value ("" when absent).
func (r Resource) String(path ...any) string {
	s, _ := r.Lookup(path...).(string)
	return s
}

// IsSecret reports whether the input at path is marked secret (itself, an enclosing value or a
// value inside it).
func (r Resource) IsSecret(path ...any) bool {
	v := resource.NewObjectProperty(r.Inputs)
	for _, p := range path {
		if v.IsSecret() {
			return true
		}
		v = unwrap(v)
		switch k := p.(type) {
		case string:
			if !v.IsObject() {
				return false
			}
			v = v.ObjectValue()[resource.PropertyKey(k)]
		case int:
			if !v.IsArray() || k >= len(v.ArrayValue()) {
				return false
			}
			v = v.ArrayValue()[k]
		}
	}
	return v.ContainsSecrets()
}

func unwrap(v resource.PropertyValue) resource.PropertyValue {
	for {
		switch {
		case v.IsSecret():
			v = v.SecretValue().Element
		case v.IsOutput():
			v = v.OutputValue().Element
		default:
			return v
		}
	}
}

// Plain converts a property value to plain Go values, unwrapping secrets and outputs.
func Plain(v resource.PropertyValue) any {
	v = unwrap(v)
	switch {
	case v.IsNull():
		return nil
	case v.IsString():
		return v.StringValue()
	case v.IsNumber():
		return v.NumberValue()
	case v.IsBool():
		return v.BoolValue()
	case v.IsArray():
		out := make([]any, len(v.ArrayValue()))
		for i, e := range v.ArrayValue() {
			out[i] = Plain(e)
		}
		return out
	case v.IsObject():
		out := map[string]any{}
		for k, e := range v.ObjectValue() {
			out[string(k)] = Plain(e)
		}
		return out
	case v.IsComputed():
		return "<computed>"
	}
	return fmt.Sprintf("<%s>", v.TypeString())
}

// Dump renders every input of every registration as JSON, for "no secret anywhere" checks.
func (m *Mocks) Dump(filter func(Resource) bool) string {
	var b strings.Builder
	for _, r := range m.Resources() {
		if filter != nil && !filter(r) {
			continue
		}
		j, _ := json.Marshal(Plain(resource.NewObjectProperty(r.Inputs)))
		fmt.Fprintf(&b, "%s/%s %s\n", r.Type, r.Name, j)
	}
	return b.String()
}

// Resolve waits for a string output of a mocked run and reports whether it is secret.
func Resolve(t testing.TB, out pulumi.StringOutput) (string, bool) {
	t.Helper()
	ch := make(chan string, 1)
	out.ApplyT(func(s string) string { ch <- s; return s })
	secret := pulumi.IsSecret(out)
	select {
	case v := <-ch:
		return v, secret
	case <-time.After(10 * time.Second):
		t.Fatal("output did not resolve")
		return "", false
	}
}

// AnyMap converts labels to the shape Lookup returns, for comparisons.
func AnyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

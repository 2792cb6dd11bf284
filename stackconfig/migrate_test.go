package stackconfig

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// setPath applies one `pulumi config set --path` to a stack's top-level keys as the CLI does
// (a.b, a[0], a["k.with.dots"]), for the migration's round trip.
func setPath(t *testing.T, top map[string]any, path, value string) {
	t.Helper()
	seg := regexp.MustCompile(`^([A-Za-z0-9]+)|^\.([A-Za-z0-9]+)|^\[(\d+)\]|^\["([^"]+)"\]`)
	var parts []any
	for rest := path; rest != ""; {
		m := seg.FindStringSubmatch(rest)
		if m == nil {
			t.Fatalf("path %q: cannot parse at %q", path, rest)
		}
		switch {
		case m[1] != "":
			parts = append(parts, m[1])
		case m[2] != "":
			parts = append(parts, m[2])
		case m[3] != "":
			n, _ := strconv.Atoi(m[3])
			parts = append(parts, n)
		default:
			parts = append(parts, m[4])
		}
		rest = rest[len(m[0]):]
	}
	var set func(node any, parts []any) any
	set = func(node any, parts []any) any {
		if len(parts) == 0 {
			return value
		}
		switch p := parts[0].(type) {
		case int:
			list, _ := node.([]any)
			for len(list) <= p {
				list = append(list, nil)
			}
			list[p] = set(list[p], parts[1:])
			return list
		default:
			m, _ := node.(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			m[p.(string)] = set(m[p.(string)], parts[1:])
			return m
		}
	}
	name := parts[0].(string)
	top[name] = set(top[name], parts[1:])
}

// The flat layout's keys, migrated and set as the CLI would, parse into the same stack: every
// value lands on its new path, secrets stay secret, ignored keys are dropped, old keys removed.
func TestMigrationOfTheFlatLayout(t *testing.T) {
	old := map[string]OldValue{
		"hostname": {Value: "registry.example.com"}, "replicas": {Value: "3"},
		"storageDriver": {Value: "s3"}, "s3Bucket": {Value: "images"}, "s3Region": {Value: "eu-west-1"},
		"s3AccessKeyId": {Value: "AKIA1", Secret: true}, "s3SecretAccessKey": {Value: "very secret", Secret: true},
		"registryCpuRequest":          {Value: "200m"},
		"s3ServiceAccountAnnotations": {Value: `[]`}, "pvcSize": {Value: "1Gi"}, "storageRedirect": {Value: "true"},
		"routing": {Value: "gateway"}, "gatewayName": {Value: "edge"}, "gatewaySectionName": {Value: "https"},
		"gatewayController": {Value: "traefik"}, "ingressClassName": {Value: "nginx"},
		"ingressSourceRanges": {Value: `["10.0.0.0/8","192.168.0.0/16"]`},
		"tlsSource":           {Value: "secret"}, "tlsSecretName": {Value: "corp-tls"}, "certValidityHours": {Value: "48"},
		"extraAccounts": {Value: `["ci","cluster-a"]`}, "registryImage": {Value: "registry:3.1.2"},
		"registryEnv": {Value: `{"NO_PROXY":".svc"}`}, "gcSchedule": {Value: "@daily"}, "redisMaxMemory": {Value: "32mb"},
	}
	m, err := Migrate(old)
	if err != nil {
		t.Fatal(err)
	}
	// As the tool runs it on the stack's config: RemoveFirst, Set, Remove.
	top := map[string]any{}
	secret := map[string]bool{}
	for k, v := range old {
		top[k], secret[k] = v.Value, v.Secret
	}
	for _, k := range m.RemoveFirst {
		delete(top, k)
	}
	for _, s := range m.Set {
		setPath(t, top, s.Path, s.Value)
		if s.Secret {
			name, _, _ := strings.Cut(s.Path, ".")
			secret[name] = true
		}
	}
	for _, k := range m.Remove {
		delete(top, k)
	}
	c, err := Parse(func(name string) (string, bool) {
		v, ok := top[name]
		if s, isString := v.(string); isString {
			return s, ok
		}
		raw, _ := json.Marshal(v)
		return string(raw), ok
	}, func(name string) bool { return secret[name] })
	if err != nil {
		t.Fatalf("the migrated config is refused: %v", err)
	}
	s3 := c.Storage.S3
	if s3 == nil || s3.Bucket != pulumi.String("images") || s3.Credentials == nil || s3.Credentials.SecretAccessKey != "very secret" || !s3.Redirect ||
		c.Routing.Gateway == nil || c.Routing.Gateway.Existing.Name != pulumi.String("edge") || c.Routing.Controller != "traefik" ||
		!slices.Equal(c.Routing.SourceRanges, []string{"10.0.0.0/8", "192.168.0.0/16"}) || c.TLS.Secret == nil || c.TLS.Secret.Name != pulumi.String("corp-tls") ||
		!slices.Equal(c.Accounts(), []string{"admin", "ci", "cluster-a"}) || c.RegistryEnv["NO_PROXY"] != ".svc" ||
		c.GCSchedule != "@daily" || c.RedisMaxMemory != "32mb" || c.Replicas != 3 {
		t.Errorf("migrated config differs: %+v", c)
	}
	if _, kept := top["s3SecretAccessKey"]; !kept || !secret["s3SecretAccessKey"] {
		t.Error("the S3 key was moved or lost its secrecy: it stays a secret key of its own")
	}
	for _, want := range []string{"pvcSize (ignored: storageDriver was s3)", "ingressClassName (ignored: routing was gateway)",
		"certValidityHours (ignored: tlsSource was secret)"} {
		if !slices.Contains(m.Dropped, want) {
			t.Errorf("dropped %v lacks %q", m.Dropped, want)
		}
	}
	for k := range old {
		_, isMoved := moved[k]
		removed := slices.Contains(m.Remove, k) || slices.Contains(m.RemoveFirst, k)
		if (isMoved || k == "routing") != removed {
			t.Errorf("%s: removed = %v, want it removed exactly when it moved", k, removed)
		}
	}
	if !slices.Equal(m.RemoveFirst, []string{"routing"}) {
		t.Errorf("RemoveFirst = %v: the old routing mode must go before routing.* is set, or its removal takes them along", m.RemoveFirst)
	}
	// Without storage.s3 the old layout ignored a static key; it is dropped (and would be refused now).
	fs, err := Migrate(map[string]OldValue{"s3AccessKeyId": {Value: "AKIA", Secret: true}, "s3SecretAccessKey": {Value: "k", Secret: true}})
	if err != nil || !slices.Contains(fs.Remove, "s3AccessKeyId") || !slices.Contains(fs.Dropped, "s3AccessKeyId (ignored: storageDriver was not s3)") {
		t.Errorf("a static key beside a volume: %+v, %v", fs, err)
	}
	// Empty meant unset: removed, never set on a path (it would choose a variant), unless the new
	// default is not empty (a PV without a class must stay without one).
	empty, err := Migrate(map[string]OldValue{"gatewayName": {}, "s3AccessKeyId": {}, "storageMode": {Value: "existing"},
		"storageVolumeName": {Value: "old-pv"}, "storageClassName": {}})
	if err != nil || len(empty.Dropped) != 0 || !slices.Contains(empty.Remove, "gatewayName") ||
		!slices.Contains(empty.Set, Setting{Path: "storage.filesystem.className"}) ||
		slices.ContainsFunc(empty.Set, func(s Setting) bool { return strings.HasPrefix(s.Path, "routing.") }) {
		t.Errorf("empty old values: %+v, %v", empty, err)
	}
	// A secret value is never quoted in an error.
	if _, err := Migrate(map[string]OldValue{"registryEnv": {Value: "not-json-secret", Secret: true}}); err == nil || strings.Contains(err.Error(), "not-json-secret") {
		t.Errorf("a malformed secret value: %v, want an error that does not quote it", err)
	}
	if again, err := Migrate(map[string]OldValue{"hostname": {Value: "x.example.com"}}); err != nil || len(again.Set)+len(again.Remove) != 0 {
		t.Errorf("a config of the new layout needs no migration: %+v, %v", again, err)
	}
}

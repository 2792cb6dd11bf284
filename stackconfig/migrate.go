package stackconfig

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// OldValue is one key of a stack's config as `pulumi config --json --show-secrets` prints it.
type OldValue struct {
	Value  string
	Secret bool
}

// Setting is one `pulumi config set --path` of a migration.
type Setting struct {
	Path, Value string
	Secret      bool
}

// Migration rewrites a stack config of the flat layout (before 2026-12) into the structured one.
type Migration struct {
	// RemoveFirst are old keys whose names the new layout uses for a structured key (routing: a mode
	// then, an object now): they go before Set, which would otherwise write into them and then lose
	// its fields with them. Set are the new paths to set, Remove the other old keys, removed after
	// them (an interrupted migration keeps every value somewhere).
	RemoveFirst []string
	Set         []Setting
	Remove      []string
	// Dropped are old keys that the old layout ignored for the mode chosen (e.g. storageMode with
	// storageDriver s3), with why; they are removed and not carried over, since the new layout
	// refuses a field of the variant not chosen.
	Dropped []string
}

// dropUnless names the old keys each mode ignored: a key is carried over only when its mode is
// the one the old config chose.
var dropUnless = []struct {
	keys []string
	mode func(old map[string]OldValue) bool
	why  string
}{
	{[]string{"storageMode", "storageClassName", "storageHostPath", "storageNodeName", "storageHostPathChown",
		"storageVolumeName", "storageAccessMode", "pvSize", "pvcSize"},
		func(o map[string]OldValue) bool { return o["storageDriver"].Value != DriverS3 }, "storageDriver was s3"},
	{[]string{"storageRedirect", "s3Bucket", "s3Region", "s3Endpoint", "s3AllowHttpEndpoint", "s3ForcePathStyle",
		"s3RootDirectory", "s3CaBundlePem", "s3Encrypt", "s3KmsKeyId", "s3StorageClass", "s3ChunkSize",
		"s3AccessKeyId", "s3SecretAccessKey", "s3ServiceAccountAnnotations"},
		func(o map[string]OldValue) bool { return o["storageDriver"].Value == DriverS3 }, "storageDriver was not s3"},
	{[]string{"ingressClassName", "traefikEntryPoint", "ingressController"},
		func(o map[string]OldValue) bool { return o["routing"].Value != string(RoutingGateway) }, "routing was gateway"},
	{[]string{"gatewayClassName", "gatewayListenerPort", "gatewayName", "gatewayNamespace", "gatewaySectionName", "gatewayController"},
		func(o map[string]OldValue) bool { return o["routing"].Value == string(RoutingGateway) }, "routing was not gateway"},
	{[]string{"certValidityHours"},
		func(o map[string]OldValue) bool { return o["tlsSource"].Value != string(TLSSecret) }, "tlsSource was secret"},
	{[]string{"tlsSecretName", "tlsCaCertPem"},
		func(o map[string]OldValue) bool { return o["tlsSource"].Value == string(TLSSecret) }, "tlsSource was not secret"},
	{[]string{"redisImage", "redisMaxMemory", "redisCpuRequest", "redisMemoryRequest"},
		func(o map[string]OldValue) bool { return o["cacheEnabled"].Value != "false" }, "cacheEnabled was false"},
}

// Migrate maps the keys of the flat layout in old (by name, without the project prefix) onto
// config paths. Keys the new layout keeps (hostname, mirrors, ...) are not touched. The mode keys
// (routing, tlsSource, storageDriver) are removed: the variant set now chooses the mode.
func Migrate(old map[string]OldValue) (*Migration, error) {
	m := &Migration{}
	// A parse error names the key, and quotes the value unless it is secret.
	invalid := func(name string, v OldValue, want string, err error) error {
		if v.Secret {
			return fmt.Errorf("config %q: not %s: %w", name, want, err)
		}
		return fmt.Errorf("config %q: %q is not %s: %w", name, v.Value, want, err)
	}
	ignored := map[string]string{}
	for _, d := range dropUnless {
		if !d.mode(old) {
			for _, k := range d.keys {
				ignored[k] = d.why
			}
		}
	}
	add := func(path, value string, secret bool) { m.Set = append(m.Set, Setting{path, value, secret}) }
	// The accounts list: username (default admin) first, then extraAccounts.
	if u, e := old["username"], old["extraAccounts"]; u.Value != "" || e.Value != "" {
		admin := u.Value
		if admin == "" {
			admin = "admin"
		}
		add("accounts[0]", admin, u.Secret)
		var extra []string
		if e.Value != "" {
			var err error
			if extra, err = stringList(e.Value); err != nil {
				return nil, invalid("extraAccounts", e, "a list of strings", err)
			}
		}
		for i, a := range extra {
			add(fmt.Sprintf("accounts[%d]", i+1), a, e.Secret)
		}
	}
	if v, ok := old["routing"]; ok && (v.Value == string(RoutingIngress) || v.Value == string(RoutingGateway)) {
		m.RemoveFirst = append(m.RemoveFirst, "routing")
	}
	defaults := Defaults()
	for _, name := range slices.Sorted(maps.Keys(old)) {
		v := old[name]
		path, isMoved := moved[name]
		if def, isPath := defaults[path]; v.Value == "" && (ignored[name] != "" || (isMoved && (!isPath || def == ""))) {
			// Empty meant unset in the flat layout (and `pulumi config --json` lists a key the
			// project declares with its empty default): it goes without a trace. Set on a path it
			// would choose a variant. An empty value whose default is not empty (a PV without a
			// class) is carried over below.
			m.Remove = append(m.Remove, name)
			continue
		}
		switch {
		case ignored[name] != "":
			// Also a key the new layout keeps (s3AccessKeyId without storage.s3 is refused now).
			m.Dropped = append(m.Dropped, fmt.Sprintf("%s (ignored: %s)", name, ignored[name]))
		case !isMoved:
			continue
		case name == "username" || name == "extraAccounts" || name == "tlsSource" || name == "storageDriver":
			// Carried over above, or chosen by the variant set.
		case name == "ingressSourceRanges":
			items, err := stringList(v.Value)
			if err != nil {
				return nil, invalid(name, v, "a list of strings", err)
			}
			for i, item := range items {
				add(fmt.Sprintf("%s[%d]", path, i), item, v.Secret)
			}
		case name == "s3ServiceAccountAnnotations":
			items, err := stringList(v.Value)
			if err != nil {
				return nil, invalid(name, v, "a list of strings", err)
			}
			for _, kv := range items {
				k, val, _ := strings.Cut(kv, "=")
				add(fmt.Sprintf("%s[%q]", path, k), val, v.Secret)
			}
		case name == "registryEnv":
			var env map[string]string
			if err := json.Unmarshal([]byte(v.Value), &env); err != nil {
				return nil, invalid(name, v, "an object of names and values", err)
			}
			for _, k := range slices.Sorted(maps.Keys(env)) {
				add(fmt.Sprintf("%s[%q]", path, k), env[k], v.Secret)
			}
		default:
			add(path, v.Value, v.Secret)
		}
		m.Remove = append(m.Remove, name)
	}
	return m, nil
}

package stackconfig

import (
	"reflect"
	"sort"
	"testing"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/placement"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/registrystack"
)

// opaque are Args types whose fields the README describes as one structured key (mirrors,
// monitoring, autoscaling, placement): one config path sets the whole value.
var opaque = map[reflect.Type]bool{
	reflect.TypeOf(registrystack.Mirror{}): true, reflect.TypeOf(monitoring.Config{}): true,
	reflect.TypeOf(registry.Autoscaling{}): true, reflect.TypeOf(placement.Spec{}): true,
	reflect.TypeOf(gc.Retention{}): true, reflect.TypeOf(auth.Token{}): true,
	reflect.TypeOf(registrystack.ClusterPullArgs{}): true,
}

// argLeaves maps the leaf fields of an Args value (Storage.S3.Bucket, ...) to their values: pointers
// and structs are walked (a nil pointer as the zero value of what it points to, so every leaf of the
// type is listed), lists, maps and opaque types are leaves.
func argLeaves(v reflect.Value, prefix string, out map[string]any) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v = reflect.Zero(v.Type().Elem())
		} else {
			v = v.Elem()
		}
	}
	t := v.Type()
	if t.Kind() != reflect.Struct || opaque[t] {
		out[prefix] = v.Interface()
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		p := f.Name
		if prefix != "" {
			p = prefix + "." + f.Name
		}
		argLeaves(v.Field(i), p, out)
	}
}

// The stack config mirrors Args: every config path (but kubeContext, the program's provider)
// reaches a field of the component's Args, and every field of Args is reachable from a config path.
// Each path is set to a valid non-default value (with what it needs beside it) and the Args that
// come out are compared with those of the defaults.
func TestConfigPathsAndArgsMirrorEachOther(t *testing.T) {
	s3 := map[string]string{"storage.s3.bucket": "images", "storage.s3.region": "eu-west-1"}
	with := func(base map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	hostPath := map[string]string{"storage.filesystem.mode": "hostPath"}
	samples := map[string]map[string]string{
		"namespace": {"namespace": "other"}, "createNamespace": {"createNamespace": "false"},
		"hostname": {"hostname": "r.example.com"}, "extraDnsNames": {"extraDnsNames": `["r2.example.com"]`},
		"extraIpAddresses": {"extraIpAddresses": `["10.1.2.3"]`}, "replicas": {"replicas": "3"},
		"accounts":                            {"accounts": `["admin","ci"]`},
		"routing.ingress.className":           {"routing.ingress.className": "traefik"},
		"routing.ingress.traefikEntryPoint":   {"routing.ingress.className": "traefik", "routing.ingress.traefikEntryPoint": "tls"},
		"routing.gateway.create.className":    {"routing.gateway.create.className": "eg"},
		"routing.gateway.create.listenerPort": {"routing.gateway.create.className": "eg", "routing.gateway.create.listenerPort": "9443"},
		"routing.gateway.existing.name":       {"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https"},
		"routing.gateway.existing.namespace": {"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https",
			"routing.gateway.existing.namespace": "platform"},
		"routing.gateway.existing.sectionName": {"routing.gateway.existing.name": "edge", "routing.gateway.existing.sectionName": "https"},
		"routing.ingress.controller":           {"routing.ingress.controller": "traefik"},
		"routing.gateway.controller":           {"routing.gateway.create.className": "eg", "routing.gateway.controller": "traefik"},
		"routing.sourceRanges":                 {"routing.sourceRanges": `["10.0.0.0/8"]`},
		"routing.allowUnenforcedSourceRanges": {"routing.ingress.controller": "other", "routing.sourceRanges": `["10.0.0.0/8"]`,
			"routing.allowUnenforcedSourceRanges": "true"},
		"tls.generated.validityHours":      {"tls.generated.validityHours": "48"},
		"tls.secret.name":                  {"tls.secret.name": "corp-tls"},
		"tls.secret.caCertPem":             {"tls.secret.name": "corp-tls", "tls.secret.caCertPem": testCAPEM(t)},
		"storage.filesystem.mode":          hostPath,
		"storage.filesystem.className":     {"storage.filesystem.className": "fast"},
		"storage.filesystem.hostPath":      with(hostPath, "storage.filesystem.hostPath", "/srv/registry"),
		"storage.filesystem.nodeName":      with(hostPath, "storage.filesystem.nodeName", "node-1"),
		"storage.filesystem.chownHostPath": with(hostPath, "storage.filesystem.chownHostPath", "true"),
		"storage.filesystem.volumeName":    {"storage.filesystem.mode": "existing", "storage.filesystem.volumeName": "old-pv"},
		"storage.filesystem.accessMode":    {"storage.filesystem.accessMode": "ReadWriteMany"},
		"storage.filesystem.pvSize":        with(hostPath, "storage.filesystem.pvSize", "20Gi"),
		"storage.filesystem.pvcSize":       {"storage.filesystem.pvcSize": "5Gi"},
		"storage.s3.bucket":                s3, "storage.s3.region": s3,
		"storage.s3.endpoint":                  with(s3, "storage.s3.endpoint", "https://s3.example.com"),
		"storage.s3.allowHttpEndpoint":         with(s3, "storage.s3.endpoint", "http://s3.example.com", "storage.s3.allowHttpEndpoint", "true"),
		"storage.s3.forcePathStyle":            with(s3, "storage.s3.forcePathStyle", "true"),
		"storage.s3.rootDirectory":             with(s3, "storage.s3.rootDirectory", "/registry"),
		"storage.s3.caBundlePem":               with(s3, "storage.s3.endpoint", "https://s3.example.com", "storage.s3.caBundlePem", testCAPEM(t)),
		"storage.s3.encrypt":                   with(s3, "storage.s3.encrypt", "true"),
		"storage.s3.kmsKeyId":                  with(s3, "storage.s3.encrypt", "true", "storage.s3.kmsKeyId", "alias/registry"),
		"storage.s3.storageClass":              with(s3, "storage.s3.storageClass", "STANDARD_IA"),
		"storage.s3.chunkSize":                 with(s3, "storage.s3.chunkSize", "10485760"),
		"storage.s3.redirect":                  with(s3, "storage.s3.redirect", "true"),
		"s3AccessKeyId":                        with(s3, "s3AccessKeyId", "AKIA", "s3SecretAccessKey", "key"),
		"s3SecretAccessKey":                    with(s3, "s3AccessKeyId", "AKIA", "s3SecretAccessKey", "key"),
		"storage.s3.serviceAccountAnnotations": with(s3, "storage.s3.serviceAccountAnnotations", `{"eks.amazonaws.com/role-arn":"arn:x"}`),
		"registry.image":                       {"registry.image": "registry:3.1.1"},
		"registry.logLevel":                    {"registry.logLevel": "debug"},
		"registry.serviceType":                 {"registry.serviceType": "NodePort"},
		"registry.cpuRequest":                  {"registry.cpuRequest": "200m"},
		"registry.memoryRequest":               {"registry.memoryRequest": "256Mi"},
		"registry.memoryLimit":                 {"registry.memoryLimit": "2Gi"},
		"registry.env":                         {"registry.env": `{"NO_PROXY":".svc"}`},
		"cache.enabled":                        {"cache.enabled": "false"},
		"cache.image":                          {"cache.image": "redis:8.0.2"},
		"cache.maxMemory":                      {"cache.maxMemory": "128mb"},
		"cache.cpuRequest":                     {"cache.cpuRequest": "100m"},
		"cache.memoryRequest":                  {"cache.memoryRequest": "128Mi"},
		"gc.schedule":                          {"gc.schedule": "@daily"},
		"gc.suspend":                           {"gc.suspend": "true"},
		"gc.kubectlImage":                      {"gc.kubectlImage": "registry.k8s.io/kubectl:v1.33.12"},
		"mirrors":                              {"mirrors": `[{"name":"ghcr","upstream":"https://ghcr.io"}]`},
		"monitoring":                           {"monitoring": `{"scrapeNamespace":"prom"}`},
		"retention":                            {"retention": `{"policies":[{"repositories":["ci/*"],"keepNewest":5}]}`},
		"auth":                                 {"auth": `{"token":{}}`},
		"clusterPull":                          {"clusterPull": `{"nodeAgent":{}}`},
		"tokenServerExtraConfig":               {"auth": `{"token":{}}`, "tokenServerExtraConfig": "ldap_auth: {}"},
		"autoscaling":                          {"autoscaling": `{"maxReplicas":4}`, "replicas": defaultOf("replicas")},
		"placement": {"mirrors": `[{"name":"ghcr","upstream":"https://ghcr.io"}]`, "placement": `{"all":{"priorityClassName":"infra"},` +
			`"registry":{"priorityClassName":"r"},"mirrors":{"priorityClassName":"m"},"cache":{"priorityClassName":"c"},"gc":{"priorityClassName":"g"}}`},
	}
	base, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	baseLeaves := map[string]any{}
	argLeaves(reflect.ValueOf(base.Args()), "", baseLeaves)
	reached := map[string]bool{}
	for _, k := range Keys() {
		if k.Path == "kubeContext" {
			continue // the program's Kubernetes provider, not an arg of the component
		}
		sample, ok := samples[k.Path]
		if !ok {
			t.Errorf("config path %s has no sample here: add one", k.Path)
			continue
		}
		c, err := parse(sample)
		if err != nil {
			t.Errorf("%s: sample %v refused: %v", k.Path, sample, err)
			continue
		}
		leaves := map[string]any{}
		argLeaves(reflect.ValueOf(c.Args()), "", leaves)
		changed := 0
		for f, v := range leaves {
			if !reflect.DeepEqual(v, baseLeaves[f]) {
				reached[f] = true
				changed++
			}
		}
		if changed == 0 {
			t.Errorf("config path %s reaches no field of Args", k.Path)
		}
	}
	var unreached []string
	for leaf := range baseLeaves {
		if !reached[leaf] {
			unreached = append(unreached, leaf)
		}
	}
	sort.Strings(unreached)
	if len(unreached) > 0 {
		t.Errorf("fields of Args no config path sets: %v", unreached)
	}
	if _, ok := baseLeaves["Storage.S3.Bucket"]; !ok {
		t.Error("the walk over Args misses Storage.S3.Bucket (nil in the defaults): it proves nothing")
	}
}

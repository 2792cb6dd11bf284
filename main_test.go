package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/crypto/bcrypt"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/redis"
	"github.com/regstack/registry-stack/stackconfig"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tService    = "kubernetes:core/v1:Service"
	tSecret     = "kubernetes:core/v1:Secret"
	tConfigMap  = "kubernetes:core/v1:ConfigMap"
	tPV         = "kubernetes:core/v1:PersistentVolume"
	tPVC        = "kubernetes:core/v1:PersistentVolumeClaim"
	tIngress    = "kubernetes:networking.k8s.io/v1:Ingress"
	tCronJob    = "kubernetes:batch/v1:CronJob"
	tPDB        = "kubernetes:policy/v1:PodDisruptionBudget"
	tNetPol     = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
	tCSR        = "tls:index/certRequest:CertRequest"
	tPassword   = "random:index/randomPassword:RandomPassword"
)

// program is the stack program as main runs it, also handing the outputs to the test.
func program(outputs *pulumi.Map) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		cfg, err := stackconfig.Load(ctx)
		if err != nil {
			return err
		}
		out, err := deploy(ctx, cfg)
		if outputs != nil {
			*outputs = out
		}
		return err
	}
}

func run(t *testing.T, config map[string]string) *testutil.Mocks {
	t.Helper()
	return testutil.MustRun(t, config, program(nil))
}

func TestDefaultStackRegistersEveryComponent(t *testing.T) {
	m := run(t, nil)

	wantKinds := map[string]int{
		"kubernetes:core/v1:Namespace": 1,
		// The default is a dynamic claim through a Retain copy of the StorageClass: no static PV.
		tPV:  0,
		tPVC: 1,
		"kubernetes:storage.k8s.io/v1:StorageClass": 2, // the class read, and its Retain copy
		"kubernetes:coordination.k8s.io/v1:Lease":   1, // the GC lease
		tSecret:                             3, // registry config, redis, TLS
		tDeployment:                         2,
		tService:                            2,
		tPDB:                                1,
		tNetPol:                             2, // redis: clients only; registry: API port only
		tIngress:                            1,
		tCronJob:                            2, // GC and its watchdog
		tConfigMap:                          1,
		"kubernetes:core/v1:ServiceAccount": 1,
		"kubernetes:rbac.authorization.k8s.io/v1:Role":        1,
		"kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": 1,
		tPassword:                                 6, // htpasswd, its salt key, http.secret, redis: registry, gc, probe
		"tls:index/privateKey:PrivateKey":         2,
		"tls:index/selfSignedCert:SelfSignedCert": 1,
		tCSR: 1,
		"tls:index/locallySignedCert:LocallySignedCert": 1,
		"registry-stack:index:Storage":                  1,
		"registry-stack:index:Redis":                    1,
		"registry-stack:index:Registry":                 1,
		"registry-stack:index:Ingress":                  1,
		"registry-stack:index:GC":                       1,
	}
	for kind, n := range wantKinds {
		if got := len(m.OfType(kind)); got != n {
			t.Errorf("%s: %d registered, want %d", kind, got, n)
		}
	}
}

func TestEveryKubernetesObjectUsesTheExplicitProviderAndIsLabelled(t *testing.T) {
	m := run(t, nil)
	for _, r := range m.Resources() {
		if !strings.HasPrefix(r.Type, "kubernetes:") || r.Type == "pulumi:providers:kubernetes" {
			continue
		}
		if !strings.Contains(r.Provider, "pulumi:providers:kubernetes::k8s") {
			t.Errorf("%s/%s: provider %q, want the stack's explicit provider", r.Type, r.Name, r.Provider)
		}
		if r.Type == "kubernetes:core/v1:PersistentVolumePatch" || r.Read {
			continue
		}
		for _, key := range []string{"name", "instance", "component", "part-of", "managed-by"} {
			if r.String("metadata", "labels", "app.kubernetes.io/"+key) == "" {
				t.Errorf("%s/%s: missing label app.kubernetes.io/%s", r.Type, r.Name, key)
			}
		}
	}
}

func TestComponentChildrenAreParented(t *testing.T) {
	m := run(t, nil)
	topLevel := map[string]bool{"pulumi:providers:kubernetes": true, "kubernetes:core/v1:Namespace": true}
	for _, r := range m.Resources() {
		if topLevel[r.Type] || strings.HasPrefix(r.Type, "registry-stack:index:") {
			continue
		}
		if !strings.Contains(r.Parent, "registry-stack:index:") {
			t.Errorf("%s/%s: parent %q, want a component", r.Type, r.Name, r.Parent)
		}
	}
}

func TestConfigValuesReachTheResources(t *testing.T) {
	m := run(t, map[string]string{
		"replicas":                    "3",
		"hostname":                    "registry.example.com",
		"extraDnsNames":               `["registry.internal"]`,
		"extraIpAddresses":            `["10.1.2.3"]`,
		"storage.filesystem.pvSize":   "20Gi",
		"storage.filesystem.pvcSize":  "15Gi",
		"namespace":                   "images",
		"routing.ingress.className":   "traefik",
		"storage.filesystem.mode":     "hostPath",
		"storage.filesystem.hostPath": "/srv/registry",
	})

	dep := m.Get(t, tDeployment, "registry")
	if got := dep.Lookup("spec", "replicas"); got != 3.0 {
		t.Errorf("replicas = %v, want 3", got)
	}
	if got := dep.String("metadata", "namespace"); got != "images" {
		t.Errorf("namespace = %q", got)
	}
	pv := m.Get(t, tPV, "registry-data")
	if got := pv.String("spec", "capacity", "storage"); got != "20Gi" {
		t.Errorf("PV capacity = %q, want 20Gi", got)
	}
	if got := pv.String("spec", "hostPath", "path"); got != "/srv/registry" {
		t.Errorf("PV hostPath = %q", got)
	}
	if got := pv.String("metadata", "name"); got != "images-registry-data" {
		t.Errorf("PV name = %q, want the namespace-qualified images-registry-data", got)
	}
	pvc := m.Get(t, tPVC, "registry-data")
	if got := pvc.String("spec", "resources", "requests", "storage"); got != "15Gi" {
		t.Errorf("PVC request = %q, want 15Gi", got)
	}

	ing := m.Get(t, tIngress, "registry")
	if got := ing.String("spec", "rules", 0, "host"); got != "registry.example.com" {
		t.Errorf("ingress host = %q", got)
	}
	if got := ing.String("spec", "ingressClassName"); got != "traefik" {
		t.Errorf("ingress class = %q", got)
	}
	tlsHosts := ing.Lookup("spec", "tls", 0, "hosts")
	if fmt.Sprint(tlsHosts) != "[registry.example.com registry.internal]" {
		t.Errorf("ingress TLS hosts = %v", tlsHosts)
	}
	csr := m.Get(t, tCSR, "registry-server-csr")
	if got := fmt.Sprint(csr.Lookup("dnsNames")); got != "[registry.example.com registry.internal]" {
		t.Errorf("certificate DNS SANs = %s, want the hostname first", got)
	}
	if got := fmt.Sprint(csr.Lookup("ipAddresses")); got != "[10.1.2.3]" {
		t.Errorf("certificate IP SANs = %s", got)
	}
}

func TestDataSurvivesDestroy(t *testing.T) {
	m := run(t, map[string]string{"storage.filesystem.mode": "hostPath"})
	for _, r := range []testutil.Resource{m.Get(t, tPV, "registry-data"), m.Get(t, tPVC, "registry-data")} {
		if !r.RetainOnDelete {
			t.Errorf("%s: retainOnDelete is off: pulumi destroy would delete the images", r.Type)
		}
	}
	if got := m.Get(t, tPV, "registry-data").String("spec", "persistentVolumeReclaimPolicy"); got != "Retain" {
		t.Errorf("PV reclaim policy = %q, want Retain", got)
	}
}

func TestSecretsAreSecretAndNeverInConfigMaps(t *testing.T) {
	m := run(t, nil)
	for _, c := range []struct{ name, key string }{
		{"registry-config", "config.yml"},
		{"registry-config", "htpasswd"},
		{"registry-redis", "password"},
		{"registry-redis", "redis.conf"},
		{"registry-tls", "tls.key"},
	} {
		if !m.Get(t, tSecret, c.name).IsSecret("stringData", c.key) {
			t.Errorf("Secret %s key %s is not marked secret", c.name, c.key)
		}
	}
	configMaps := m.Dump(func(r testutil.Resource) bool { return r.Type == tConfigMap })
	if configMaps == "" {
		t.Fatal("no ConfigMap registered: the check below would prove nothing")
	}
	for _, secret := range []string{"mock-password-", "$2a$", "PRIVATE KEY", "requirepass"} {
		if strings.Contains(configMaps, secret) {
			t.Errorf("a ConfigMap contains secret material %q", secret)
		}
	}
}

// outputsOf runs the program and returns its stack outputs as text and which are secret.
func outputsOf(t *testing.T, config map[string]string) (map[string]string, map[string]bool) {
	t.Helper()
	var outputs pulumi.Map
	var mu sync.Mutex
	var wg sync.WaitGroup
	plain := map[string]string{}
	secret := map[string]bool{}
	_, err := testutil.Run(t, config, func(ctx *pulumi.Context) error {
		if err := program(&outputs)(ctx); err != nil {
			return err
		}
		for k, v := range outputs {
			out := pulumi.ToOutput(v)
			secret[k] = pulumi.IsSecret(out)
			wg.Add(1)
			out.ApplyT(func(x any) any {
				defer wg.Done()
				mu.Lock()
				defer mu.Unlock()
				plain[k] = fmt.Sprint(x)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stack outputs did not resolve")
	}
	return plain, secret
}

func TestOutputsHideThePassword(t *testing.T) {
	plain, secret := outputsOf(t, nil)
	for _, k := range []string{"url", "hostname", "username", "password", "caCertPem", "dockerLoginCommand", "trustCaCommands",
		"cranePushExample", "routing", "routeName", "tlsSecretName"} {
		if _, ok := plain[k]; !ok {
			t.Errorf("output %q missing", k)
		}
	}
	if !secret["password"] || !secret["passwords"] {
		t.Error("output password or passwords is not secret")
	}
	for k, v := range plain {
		if k != "password" && k != "passwords" && (secret[k] || strings.Contains(v, "mock-password-")) {
			t.Errorf("output %q is secret or holds a password: %q", k, v)
		}
	}
	if plain["url"] != "https://registry.minikube.test" {
		t.Errorf("url = %q", plain["url"])
	}
	if plain["routing"] != "ingress (class nginx, controller nginx)" || plain["tlsSecretName"] != "registry-tls" {
		t.Errorf("routing = %q, tlsSecretName = %q", plain["routing"], plain["tlsSecretName"])
	}
}

// Gateway mode replaces the Ingress by an HTTPRoute (and a created Gateway); the certificate, the
// data and the credentials are the same resources as in ingress mode, so switching keeps them.
func TestGatewayRoutingReplacesOnlyTheIngress(t *testing.T) {
	ingressMode := run(t, map[string]string{"routing.ingress.className": "traefik"})
	gatewayMode := run(t, map[string]string{"routing.gateway.create.className": "traefik", "routing.gateway.create.listenerPort": "8443"})
	if n := len(gatewayMode.OfType(tIngress)); n != 0 {
		t.Errorf("%d Ingresses in gateway mode", n)
	}
	for _, kind := range []string{"kubernetes:gateway.networking.k8s.io/v1:Gateway", "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"} {
		if n := len(gatewayMode.OfType(kind)); n != 1 {
			t.Errorf("%s: %d, want 1", kind, n)
		}
	}
	names := func(m *testutil.Mocks) map[string]string {
		out := map[string]string{}
		for _, r := range m.Resources() {
			if !strings.Contains(r.Type, "Ingress") && !strings.Contains(r.Type, "Gateway") &&
				!strings.Contains(r.Type, "gateway.networking") && !strings.Contains(r.Type, "traefik.io") {
				out[r.Type+"::"+r.Name] = r.Parent
			}
		}
		return out
	}
	a, b := names(ingressMode), names(gatewayMode)
	for urn, parent := range a {
		if b[urn] != parent {
			t.Errorf("%s (parent %s) is not the same resource in gateway mode (parent %q)", urn, parent, b[urn])
		}
	}
	if len(a) != len(b) {
		t.Errorf("%d other resources in ingress mode, %d in gateway mode", len(a), len(b))
	}
	plain, _ := outputsOf(t, map[string]string{"routing.gateway.existing.name": "edge", "routing.gateway.existing.namespace": "platform", "routing.gateway.existing.sectionName": "websecure"})
	if plain["routing"] != "gateway (existing platform/edge, listener websecure, controller of its GatewayClass)" || plain["routeName"] != "registry" {
		t.Errorf("routing = %q, routeName = %q", plain["routing"], plain["routeName"])
	}
}

// With a certificate from an existing Secret, nothing is generated and the outputs say what to trust.
func TestSecretTLSSourceGeneratesNoCertificate(t *testing.T) {
	cfg := map[string]string{"tls.secret.name": "corp-tls"}
	m := run(t, cfg)
	for _, r := range m.Resources() {
		if strings.HasPrefix(r.Type, "tls:") {
			t.Errorf("%s/%s generated with tls.secret", r.Type, r.Name)
		}
	}
	if got := m.Get(t, tIngress, "registry").String("spec", "tls", 0, "secretName"); got != "corp-tls" {
		t.Errorf("Ingress TLS secret = %q, want corp-tls", got)
	}
	run(t, nil).Get(t, tSecret, stackconfig.GeneratedTLSSecretName) // the name validation reserves
	plain, _ := outputsOf(t, cfg)
	if plain["caCertPem"] != "" || !strings.Contains(plain["trustCaCommands"], "no tls.secret.caCertPem was given") || plain["tlsSecretName"] != "corp-tls" {
		t.Errorf("caCertPem = %q, trustCaCommands = %q, tlsSecretName = %q", plain["caCertPem"], plain["trustCaCommands"], plain["tlsSecretName"])
	}
}

func TestRenderedRegistryConfigIsAcceptedByTheRegistry(t *testing.T) {
	m := run(t, nil)
	raw := m.Get(t, tSecret, "registry-config").String("stringData", "config.yml")
	cfg, err := configuration.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("registry rejects its config: %v\n%s", err, raw)
	}
	if got := cfg.Redis.Options.Addrs; !slices.Equal(got, []string{"registry-redis:6379"}) {
		t.Errorf("redis addrs = %v, want the redis Service", got)
	}
	if got := cfg.Redis.Options.Password; got != "mock-password-registry-redis-password" {
		t.Errorf("redis password = %q, want the generated Redis password", got)
	}
	if got := cfg.HTTP.Secret; got != "mock-password-registry-http-secret" {
		t.Errorf("http.secret = %q, want the shared generated secret", got)
	}
	if got := cfg.Storage["cache"]["blobdescriptor"]; got != "redis" {
		t.Errorf("storage.cache.blobdescriptor = %v", got)
	}
	htpasswd := m.Get(t, tSecret, "registry-config").String("stringData", "htpasswd")
	user, hash, _ := strings.Cut(strings.TrimSpace(htpasswd), ":")
	if user != "admin" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("mock-password-registry-password")) != nil {
		t.Errorf("htpasswd = %q, want admin:bcrypt of the generated password", htpasswd)
	}
}

func TestSingleReplicaHasNoDisruptionBudget(t *testing.T) {
	m := run(t, map[string]string{"replicas": "1"})
	if n := len(m.OfType(tPDB)); n != 0 {
		t.Errorf("%d PodDisruptionBudgets with one replica; it would block every node drain", n)
	}
}

func TestCacheDisabledRemovesRedis(t *testing.T) {
	m := run(t, map[string]string{"cache.enabled": "false"})
	if n := len(m.OfType("registry-stack:index:Redis")); n != 0 {
		t.Errorf("Redis registered with cache.enabled=false")
	}
	raw := m.Get(t, tSecret, "registry-config").String("stringData", "config.yml")
	cfg, err := configuration.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Redis.Options.Addrs) != 0 || cfg.Storage["cache"] != nil {
		t.Errorf("config still uses redis: %s", raw)
	}
	for _, c := range m.Get(t, tCronJob, "registry-gc").Lookup("spec", "jobTemplate", "spec", "template", "spec", "initContainers").([]any) {
		if c.(map[string]any)["name"] == "flush-cache" {
			t.Error("GC flushes a cache that does not exist")
		}
	}
}

func TestDynamicStorageRetainsTheProvisionedVolume(t *testing.T) {
	m := run(t, map[string]string{"storage.filesystem.mode": "dynamic", "storage.filesystem.className": "fast"})
	if n := len(m.OfType(tPV)); n != 0 {
		t.Errorf("dynamic mode registered %d static PVs", n)
	}
	class := m.Get(t, "kubernetes:storage.k8s.io/v1:StorageClass", "registry-data-retain")
	if got := class.String("reclaimPolicy"); got != "Retain" {
		t.Errorf("claim's class reclaimPolicy = %q, want Retain", got)
	}
	if got := class.String("provisioner"); got != "mock.io/fast" {
		t.Errorf("claim's class provisioner = %q, want the one of class fast", got)
	}
	if got := m.Get(t, tPVC, "registry-data").String("spec", "storageClassName"); got != "registry-registry-data-retain" {
		t.Errorf("claim class = %q, want the retaining copy of fast", got)
	}
}

func TestExistingStorageBindsTheNamedVolume(t *testing.T) {
	m := run(t, map[string]string{"storage.filesystem.mode": "existing", "storage.filesystem.volumeName": "old-registry-pv", "storage.filesystem.className": ""})
	if n := len(m.OfType(tPV)); n != 0 {
		t.Errorf("existing mode registered %d PVs", n)
	}
	if got := m.Get(t, tPVC, "registry-data").String("spec", "volumeName"); got != "old-registry-pv" {
		t.Errorf("claim volumeName = %q", got)
	}
}

func TestInvalidConfigRegistersNothing(t *testing.T) {
	m, err := testutil.Run(t, map[string]string{"replicas": "0", "hostname": "not a host"}, program(nil))
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{`"replicas"`, `"hostname"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
	if n := len(m.Resources()); n != 0 {
		t.Errorf("%d resources registered before validation failed", n)
	}
}

// mirrorConfig is a stack with two mirrors: Docker Hub with upstream credentials, ghcr anonymous.
func mirrorConfig(extra map[string]string) map[string]string {
	c := map[string]string{"mirrors": `[{"name":"dockerhub","upstream":"https://registry-1.docker.io","username":"me","password":"hub-token-1"},` +
		`{"name":"ghcr","upstream":"https://ghcr.io","anonymous":true,"ttl":"24h"}]`}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestEachMirrorHasItsOwnInstanceRouteStoreAndCacheDatabase(t *testing.T) {
	m := run(t, mirrorConfig(map[string]string{"storage.filesystem.mode": "hostPath"}))
	for _, name := range []string{"registry", "registry-mirror-dockerhub", "registry-mirror-ghcr"} {
		m.Get(t, tDeployment, name)
		m.Get(t, tService, name)
		m.Get(t, tIngress, name)
	}
	if n := len(m.OfType(tDeployment)); n != 4 {
		t.Errorf("%d Deployments, want registry, redis and one per mirror", n)
	}
	if got := m.Get(t, tIngress, "registry-mirror-ghcr").String("spec", "rules", 0, "host"); got != "ghcr.registry.minikube.test" {
		t.Errorf("ghcr mirror host = %q", got)
	}
	for _, c := range []struct{ claim, path string }{
		{"registry-data", "/data/registry"},
		{"registry-mirror-dockerhub-data", "/data/registry-mirror-dockerhub"},
		{"registry-mirror-ghcr-data", "/data/registry-mirror-ghcr"},
	} {
		m.Get(t, tPVC, c.claim)
		if got := m.Get(t, tPV, c.claim).String("spec", "hostPath", "path"); got != c.path {
			t.Errorf("PV %s hostPath = %q, want %q", c.claim, got, c.path)
		}
	}
	sans := fmt.Sprint(m.Get(t, tCSR, "registry-server-csr").Lookup("dnsNames"))
	for _, h := range []string{"registry.minikube.test", "dockerhub.registry.minikube.test", "ghcr.registry.minikube.test"} {
		if !strings.Contains(sans, h) {
			t.Errorf("certificate SANs %s lack %s", sans, h)
		}
	}
	dbs := map[string]string{}
	for _, name := range []string{"registry", "registry-mirror-dockerhub", "registry-mirror-ghcr"} {
		cfg, err := configuration.Parse(strings.NewReader(m.Get(t, tSecret, name+"-config").String("stringData", "config.yml")))
		if err != nil {
			t.Fatalf("%s config.yml: %v", name, err)
		}
		db := fmt.Sprint(cfg.Redis.Options.DB)
		if other, ok := dbs[db]; ok {
			t.Errorf("%s and %s share Redis database %s: one would find the other's blobs in the cache", name, other, db)
		}
		dbs[db] = name
		if want := map[string]string{"registry": "", "registry-mirror-dockerhub": "https://registry-1.docker.io",
			"registry-mirror-ghcr": "https://ghcr.io"}[name]; cfg.Proxy.RemoteURL != want {
			t.Errorf("%s proxy.remoteurl = %q, want %q", name, cfg.Proxy.RemoteURL, want)
		}
		if anonymous := cfg.Auth.Type() == ""; anonymous != (name == "registry-mirror-ghcr") {
			t.Errorf("%s auth = %q", name, cfg.Auth.Type())
		}
		// Every instance logs in as the registry's ACL user, which may SELECT because mirrors exist.
		if cfg.Redis.Options.Username != redis.RegistryUser || cfg.Redis.Options.Password != "mock-password-registry-redis-password" {
			t.Errorf("%s logs in to Redis as %q", name, cfg.Redis.Options.Username)
		}
	}
	if conf := m.Get(t, tSecret, "registry-redis").String("stringData", "redis.conf"); !strings.Contains(conf, "user registry on ") ||
		!strings.Contains(conf, " +select") {
		t.Errorf("with mirrors the registry's ACL user may not SELECT their databases:\n%s", conf)
	}
	if conf := run(t, nil).Get(t, tSecret, "registry-redis").String("stringData", "redis.conf"); strings.Contains(conf, "+select") {
		t.Errorf("without mirrors the registry's ACL user may SELECT:\n%s", conf)
	}
	// The mirrors reach the cache; the GC CronJob still targets only the registry.
	redisPolicy := fmt.Sprint(m.Get(t, tNetPol, "registry-redis").Lookup("spec", "ingress"))
	for _, name := range []string{"registry-mirror-dockerhub", "registry-mirror-ghcr"} {
		if !strings.Contains(redisPolicy, name) {
			t.Errorf("Redis NetworkPolicy does not admit %s: %s", name, redisPolicy)
		}
	}
	if got := fmt.Sprint(m.Get(t, tCronJob, "registry-gc").Inputs); strings.Contains(got, "registry-mirror-") {
		t.Errorf("the GC CronJob refers to a mirror: a mirror's content expires by its TTL")
	}
}

func TestNoMirrorLeavesTheStackAsItWas(t *testing.T) {
	plain, _ := outputsOf(t, nil)
	for _, k := range []string{"mirrors", "mirrorPasswords", "mirrorContainerdHosts", "mirrorSetupCommands"} {
		if _, ok := plain[k]; ok {
			t.Errorf("output %s without mirrors", k)
		}
	}
	if n := len(run(t, nil).OfType(tDeployment)); n != 2 {
		t.Errorf("%d Deployments without mirrors, want 2", n)
	}
}

func TestMirrorOutputsKeepCredentialsSecret(t *testing.T) {
	plain, secret := outputsOf(t, mirrorConfig(nil))
	if !secret["mirrorPasswords"] || !secret["mirrorContainerdHosts"] {
		t.Errorf("mirrorPasswords secret=%v, mirrorContainerdHosts secret=%v; both hold credentials", secret["mirrorPasswords"], secret["mirrorContainerdHosts"])
	}
	if secret["mirrors"] || secret["mirrorSetupCommands"] {
		t.Error("mirrors or mirrorSetupCommands is secret; they hold no credential")
	}
	for _, k := range []string{"mirrors", "mirrorSetupCommands"} {
		if strings.Contains(plain[k], "mock-password-") || strings.Contains(plain[k], "hub-token-1") {
			t.Errorf("output %s holds a credential: %s", k, plain[k])
		}
	}
	if strings.Contains(plain["mirrorPasswords"], "ghcr") {
		t.Errorf("mirrorPasswords has the anonymous mirror: %s", plain["mirrorPasswords"])
	}
	for _, want := range []string{"/etc/containerd/certs.d/docker.io/hosts.toml", "/etc/containerd/certs.d/ghcr.io/hosts.toml"} {
		if !strings.Contains(plain["mirrorContainerdHosts"], want) {
			t.Errorf("mirrorContainerdHosts lacks %s", want)
		}
	}
	if !strings.Contains(plain["mirrorSetupCommands"], "docker login dockerhub.registry.minikube.test") {
		t.Errorf("setup commands for an authenticated Docker Hub mirror do not say how to log in:\n%s", plain["mirrorSetupCommands"])
	}
	// Anonymous Docker Hub: registry-mirrors and minikube --registry-mirror work.
	anon, _ := outputsOf(t, map[string]string{"mirrors": `[{"name":"hub","upstream":"https://registry-1.docker.io","anonymous":true}]`})
	for _, want := range []string{`{"registry-mirrors": ["https://hub.registry.minikube.test"]}`, "minikube start --registry-mirror=https://hub.registry.minikube.test"} {
		if !strings.Contains(anon["mirrorSetupCommands"], want) {
			t.Errorf("setup commands lack %s:\n%s", want, anon["mirrorSetupCommands"])
		}
	}
}

// podTemplates are the pod templates (metadata and spec) of every workload the stack registers
// (Deployments, CronJobs' Jobs), keyed type/name.
func podTemplates(t *testing.T, m *testutil.Mocks) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range m.Resources() {
		var tmpl any
		switch r.Type {
		case tDeployment:
			tmpl = r.Lookup("spec", "template")
		case tCronJob:
			tmpl = r.Lookup("spec", "jobTemplate", "spec", "template")
		case "kubernetes:core/v1:Pod", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet", "kubernetes:batch/v1:Job":
			t.Fatalf("%s/%s: a workload kind this test does not read", r.Type, r.Name)
		default:
			continue
		}
		tm, ok := tmpl.(map[string]any)
		if !ok {
			t.Fatalf("%s/%s has no pod template", r.Type, r.Name)
		}
		out[r.Type+"/"+r.Name] = tm
	}
	return out
}

// podSpecs are the pod specs of every workload the stack registers, keyed as podTemplates.
func podSpecs(t *testing.T, m *testutil.Mocks) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for k, tm := range podTemplates(t, m) {
		s, ok := tm["spec"].(map[string]any)
		if !ok {
			t.Fatalf("%s has no pod spec", k)
		}
		out[k] = s
	}
	return out
}

// The created namespace enforces the level every pod of the stack meets: restricted by default,
// also with mirrors and with hostPath; baseline only with the explicit hostPath ownership fix,
// whose root CHOWN container is then the only thing restricted would refuse.
func TestEveryPodMeetsTheNamespacesPodSecurityLevel(t *testing.T) {
	for _, c := range []struct {
		name   string
		config map[string]string
		level  string
	}{
		{"default", nil, "restricted"},
		{"default with mirrors", mirrorConfig(nil), "restricted"},
		{"hostPath", map[string]string{"storage.filesystem.mode": "hostPath"}, "restricted"},
		{"s3", map[string]string{"storage.s3.bucket": "images", "storage.s3.region": "eu-west-1"}, "restricted"},
		{"token auth", map[string]string{"auth": `{"token":{}}`}, "restricted"},
		{"hostPath chown with mirrors", mirrorConfig(map[string]string{"storage.filesystem.mode": "hostPath", "storage.filesystem.chownHostPath": "true"}), "baseline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := run(t, c.config)
			ns := m.OfType("kubernetes:core/v1:Namespace")[0]
			for key, want := range map[string]string{"enforce": c.level, "warn": "restricted", "audit": "restricted"} {
				if got := ns.String("metadata", "labels", "pod-security.kubernetes.io/"+key); got != want {
					t.Errorf("namespace label pod-security.kubernetes.io/%s = %q, want %q", key, got, want)
				}
			}
			specs := podSpecs(t, m)
			if len(specs) < 4 {
				t.Fatalf("only %d workloads found: %v", len(specs), specs)
			}
			chownContainers := 0
			for name, spec := range specs {
				if v := testutil.PodSecurityViolations(spec, c.level); len(v) > 0 {
					t.Errorf("%s violates %s: %v", name, c.level, v)
				}
				if c.level == "restricted" {
					continue
				}
				for _, v := range testutil.PodSecurityViolations(spec, "restricted") {
					if !strings.HasPrefix(v, "initContainers volume-ownership:") {
						t.Errorf("%s: besides the ownership fix, restricted is violated by %s", name, v)
					}
					chownContainers++
				}
			}
			if c.level == "baseline" && chownContainers == 0 {
				t.Error("baseline enforced, but every pod would meet restricted")
			}
		})
	}
}

// The checker refuses what the profiles refuse (a check that cannot fail proves nothing).
func TestPodSecurityCheckerRefusesWhatTheProfilesRefuse(t *testing.T) {
	root := map[string]any{"containers": []any{map[string]any{"name": "c", "securityContext": map[string]any{
		"runAsUser": 0.0, "capabilities": map[string]any{"add": []any{"CHOWN"}},
	}}}}
	if v := testutil.PodSecurityViolations(root, "baseline"); len(v) != 0 {
		t.Errorf("baseline refuses a root container with CHOWN: %v", v)
	}
	if v := testutil.PodSecurityViolations(root, "restricted"); len(v) < 4 {
		t.Errorf("restricted admits a root container with CHOWN (violations %v)", v)
	}
	hostPath := map[string]any{"volumes": []any{map[string]any{"name": "d", "hostPath": map[string]any{"path": "/"}}},
		"hostNetwork": true, "containers": []any{map[string]any{"name": "c", "securityContext": map[string]any{"privileged": true}}}}
	if v := testutil.PodSecurityViolations(hostPath, "baseline"); len(v) != 3 {
		t.Errorf("baseline violations of a privileged hostPath pod on the host network = %v, want 3", v)
	}
}

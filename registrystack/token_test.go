package registrystack_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/stackconfig"
)

const (
	tDeployment = "kubernetes:apps/v1:Deployment"
	tSecret     = "kubernetes:core/v1:Secret"
	tKey        = "tls:index/privateKey:PrivateKey"
)

// Token mode: RSA signing keys (docker_auth's key id of an EC key never matches the registry's),
// the registry trusts every key's certificate and checks no htpasswd, waits for the token server,
// and the route sends the realm to the token server on the registry's hosts.
func TestTokenModeWiresKeysServerAndRealm(t *testing.T) {
	m := runStacks(t, map[string]string{"auth": `{"token":{"signingKeys":["a","b"]}}`, "routing.ingress.className": "traefik"}, nil, "registry")
	keys := 0
	for _, k := range m.OfType(tKey) {
		if !strings.HasPrefix(k.Name, "registry-auth-key-") {
			continue
		}
		keys++
		if alg := k.String("algorithm"); alg != "RSA" || k.Inputs["rsaBits"].NumberValue() < 2048 {
			t.Errorf("signing key %s: %s %v; docker_auth's EC key ids are never trusted, RSA only", k.Name, alg, k.Inputs["rsaBits"])
		}
	}
	if keys != 2 {
		t.Errorf("%d signing keys, want 2", keys)
	}
	cfg := m.Get(t, tSecret, "registry-config")
	if cfg.String("stringData", auth.HtpasswdKey) != "" {
		t.Error("token mode still writes the htpasswd file")
	}
	if bundle := cfg.String("stringData", auth.TokenCAKey); strings.Count(bundle, "BEGIN CERTIFICATE") != 2 {
		t.Errorf("token-ca.pem holds %d certificates, want both keys':\n%s", strings.Count(bundle, "BEGIN CERTIFICATE"), bundle)
	}
	if rendered := cfg.String("stringData", "config.yml"); !strings.Contains(rendered, "realm: https://registry.minikube.test/auth") {
		t.Errorf("config.yml has no token realm:\n%s", rendered)
	}
	server := m.Get(t, tDeployment, "registry-auth")
	reg := m.Get(t, tDeployment, "registry")
	if !slices.ContainsFunc(reg.Dependencies, func(u string) bool {
		return strings.HasSuffix(u, "::registry-auth") && strings.Contains(u, "apps/v1:Deployment")
	}) {
		t.Errorf("the registry's Deployment does not wait for the token server's: %v", reg.Dependencies)
	}
	if got := server.String("spec", "template", "spec", "containers", 0, "image"); got != "cesanta/docker_auth:1.14.0" {
		t.Errorf("token server image %q", got)
	}
	srvCfg := m.Get(t, tSecret, "registry-auth").String("stringData", "auth_config.yml")
	if !strings.Contains(srvCfg, "disable_legacy_key_id: true") || !strings.Contains(srvCfg, "admin:") {
		t.Errorf("token server config:\n%s", srvCfg)
	}
	ing := m.Get(t, "kubernetes:networking.k8s.io/v1:Ingress", "registry")
	if p, svc := ing.String("spec", "rules", 0, "http", "paths", 0, "path"), ing.String("spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"); p != auth.RealmPath || svc != "registry-auth" {
		t.Errorf("the ingress's first path is %q to %q, want %s to the token server", p, svc, auth.RealmPath)
	}
	if p := ing.String("spec", "rules", 0, "http", "paths", 1, "path"); p != "/" {
		t.Errorf("the ingress's second path is %q, want /", p)
	}
}

// Choosing the signing key changes the token server, never the registry's trusted bundle: the
// registry's pods do not roll for it.
func TestSignWithLeavesTheRegistryAlone(t *testing.T) {
	bundle := func(authCfg string) (string, string) {
		m := runStacks(t, map[string]string{"auth": authCfg}, nil, "registry")
		return m.Get(t, tSecret, "registry-config").String("stringData", auth.TokenCAKey),
			m.Get(t, tSecret, "registry-auth").String("stringData", "signing.crt")
	}
	b1, s1 := bundle(`{"token":{"signingKeys":["a","b"]}}`)
	b2, s2 := bundle(`{"token":{"signingKeys":["b","a"],"signWith":"b"}}`)
	if b1 != b2 {
		t.Errorf("the trusted bundle changed with the signer:\n%s\n%s", b1, b2)
	}
	if s1 == s2 || !strings.Contains(s2, "registry-auth-cert-b") {
		t.Errorf("signWith b signs with %q (was %q)", s2, s1)
	}
}

// Permissions are refused in config before anything is registered when they name no account.
func TestTokenValidationNamesTheField(t *testing.T) {
	args := stackconfig.DefaultArgs()
	args.Auth = auth.Spec{Token: &auth.Token{Image: "x", Replicas: 2, Lifetime: 0, SigningKeys: []string{"a"},
		Permissions: []auth.Permission{{Account: "nobody", Access: "pull"}}}}
	err := args.Validate()
	if err == nil || !strings.Contains(err.Error(), "Auth.Token.permissions[0].account") || !strings.Contains(err.Error(), "Auth.Token.lifetime") {
		t.Errorf("err = %v", err)
	}
}

// clusterPull: a dockerconfigjson Secret (secret) in each listed namespace; the agent in its own
// privileged namespace, writing only containerd's config_path, with nothing else from the node.
func TestClusterPullWritesPullSecretsAndTheAgent(t *testing.T) {
	// Placement with tolerations and a node selector: the agent takes none of it (it must reach every node).
	m := runStacks(t, map[string]string{"accounts": `["admin","nodes"]`, "auth": `{"token":{}}`,
		"placement":   `{"all":{"nodeSelector":{"pool":"infra"},"tolerations":[{"key":"infra","operator":"Exists","effect":"NoSchedule"}]}}`,
		"clusterPull": `{"account":"nodes","namespaces":["apps","web"],"nodeAgent":{"configPath":"/var/lib/rancher/k3s/agent/etc/containerd/certs.d"}}`}, nil, "registry")
	for _, ns := range []string{"apps", "web"} {
		s := m.Get(t, tSecret, "registry-pull-"+ns)
		if s.String("type") != "kubernetes.io/dockerconfigjson" || s.String("metadata", "namespace") != ns || s.String("metadata", "name") != "registry-pull" {
			t.Errorf("pull secret in %s: %s %s/%s", ns, s.String("type"), s.String("metadata", "namespace"), s.String("metadata", "name"))
		}
		if !s.IsSecret("stringData", ".dockerconfigjson") || !strings.Contains(s.String("stringData", ".dockerconfigjson"), `"username":"nodes"`) {
			t.Errorf("pull secret in %s: %s (secret %v)", ns, s.String("stringData", ".dockerconfigjson"), s.IsSecret("stringData", ".dockerconfigjson"))
		}
	}
	ns := m.Get(t, "kubernetes:core/v1:Namespace", "registry-pull-agent")
	if ns.String("metadata", "name") != "registry-node-agent" || ns.String("metadata", "labels", "pod-security.kubernetes.io/enforce") != "privileged" {
		t.Errorf("agent namespace %s enforce %q", ns.String("metadata", "name"), ns.String("metadata", "labels", "pod-security.kubernetes.io/enforce"))
	}
	ds := m.Get(t, "kubernetes:apps/v1:DaemonSet", "registry-pull-agent")
	spec := ds.Lookup("spec", "template", "spec").(map[string]any)
	vols := spec["volumes"].([]any)
	hostPaths := 0
	for _, v := range vols {
		if hp, ok := v.(map[string]any)["hostPath"].(map[string]any); ok {
			hostPaths++
			if hp["path"] != "/var/lib/rancher/k3s/agent/etc/containerd/certs.d" {
				t.Errorf("agent hostPath %v", hp["path"])
			}
		}
	}
	if spec["nodeSelector"] != nil || len(spec["tolerations"].([]any)) != 1 {
		t.Errorf("the agent took placement: nodeSelector %v, tolerations %v", spec["nodeSelector"], spec["tolerations"])
	}
	c := spec["containers"].([]any)[0].(map[string]any)["securityContext"].(map[string]any)
	if hostPaths != 1 || spec["hostNetwork"] != nil || spec["hostPID"] != nil || c["privileged"] != nil || c["allowPrivilegeEscalation"] != false ||
		c["readOnlyRootFilesystem"] != true {
		t.Errorf("agent pod: %d hostPath volumes, securityContext %v", hostPaths, c)
	}
	agentSecret := m.Get(t, tSecret, "registry-pull-agent")
	// Immutable and named by its content: a running agent pod's files never change under it.
	if name := agentSecret.String("metadata", "name"); !strings.HasPrefix(name, "registry-pull-node-agent-") || len(name) != len("registry-pull-node-agent-")+10 ||
		agentSecret.Lookup("immutable") != true {
		t.Errorf("agent Secret %q immutable=%v, want a content-named immutable Secret", name, agentSecret.Lookup("immutable"))
	}
	if got := agentSecret.String("metadata", "name"); !strings.Contains(jsonOf(spec["volumes"]), got) {
		t.Errorf("the agent pod does not mount %s", got)
	}
	files := agentSecret.String("stringData", "index")
	if !strings.Contains(files, "registry.minikube.test/hosts.toml") || !strings.Contains(files, "registry.minikube.test/registry-stack-ca.crt") {
		t.Errorf("agent index:\n%s", files)
	}
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// The token server may open no connection with static accounts only; with extraConfig's backends
// (LDAP, OIDC ...) it must reach them.
func TestTokenServerEgressOnlyForExtraBackends(t *testing.T) {
	for extra, want := range map[string]string{"": `["Ingress","Egress"]`, "ldap_auth: {}": `["Ingress"]`} {
		config := map[string]string{"auth": `{"token":{}}`}
		if extra != "" {
			config["tokenServerExtraConfig"] = extra
		}
		m := runStacks(t, config, nil, "registry")
		if got := jsonOf(m.Get(t, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "registry-auth").Lookup("spec", "policyTypes")); got != want {
			t.Errorf("extraConfig %q: policyTypes %s, want %s", extra, got, want)
		}
	}
}

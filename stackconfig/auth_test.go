package stackconfig

import (
	"strings"
	"testing"
	"time"
)

func TestAuthTokenDefaultsAndTypedValues(t *testing.T) {
	c, err := parse(map[string]string{"accounts": `["admin","ci","nodes"]`, "auth": `{"token":{"replicas":"3","lifetime":"1h","signingKeys":["k1","k2"],"signWith":"k2",` +
		`"anonymousPull":["public/*"],"permissions":[{"account":"ci","repositories":["team/*"],"access":"push"},{"account":"nodes","actions":["pull"]}]}}`})
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Args().Auth.Token
	if tok == nil || tok.Image != DefaultTokenServerImage || tok.Replicas != 3 || tok.Lifetime != time.Hour || tok.SignWith != "k2" ||
		len(tok.SigningKeys) != 2 || len(tok.Permissions) != 2 || tok.Permissions[0].Access != "push" || tok.AnonymousPull[0] != "public/*" {
		t.Fatalf("token = %+v", tok)
	}
	c, err = parse(map[string]string{"auth": `{"token":{}}`})
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Args().Auth.Token; tok.Replicas != 2 || tok.Lifetime != 15*time.Minute || len(tok.SigningKeys) != 1 || tok.SigningKeys[0] != "initial" {
		t.Errorf("defaults = %+v", tok)
	}
	if c, err := parse(nil); err != nil || c.Args().Auth.Token != nil {
		t.Errorf("no auth key: %+v %v, want htpasswd", c.Args().Auth, err)
	}
}

func TestAuthAndClusterPullRefusals(t *testing.T) {
	for _, c := range []struct {
		name   string
		config map[string]string
		want   []string
	}{
		{"token values", map[string]string{"accounts": `["admin","ci"]`, "auth": `{"token":{"image":"docker_auth","lifetime":"forever","replicas":0}}`},
			[]string{`config "auth.token.image": "docker_auth" is invalid`, `config "auth.token.lifetime": "forever" is invalid; allowed: a duration from 1m to 24h`,
				`config "auth.token.replicas": "0" is invalid`}},
		{"permissions", map[string]string{"accounts": `["admin","ci"]`, "auth": `{"token":{"signWith":"x","permissions":[{"account":"admin","access":"pull"},{"account":"ci","access":"write"}],"anonymousPull":["Public"]}}`},
			[]string{`config "auth.token.signWith": "x" is invalid`, `config "auth.token.permissions[0].account": "admin" is invalid; allowed: an account other than the first`,
				`config "auth.token.permissions[1].access": "write" is invalid; allowed: admin, push or pull`, `config "auth.token.anonymousPull[0]": "Public" is invalid`}},
		{"unknown field", map[string]string{"auth": `{"token":{"users":[]}}`}, []string{`unknown field "users"`}},
		{"pull secret needs token mode", map[string]string{"accounts": `["admin","nodes"]`, "clusterPull": `{"account":"nodes","namespaces":["apps"]}`},
			[]string{`config "clusterPull.account": "nodes" is invalid; allowed: an account of token auth (set auth.token): every htpasswd account may push`}},
		{"pull secret of a pushing account", map[string]string{"accounts": `["admin","ci"]`, "auth": `{"token":{"permissions":[{"account":"ci","access":"push"}]}}`,
			"clusterPull": `{"account":"ci","namespaces":["apps","Apps"]}`},
			[]string{`config "clusterPull.account": "ci" is invalid; allowed: a pull-only account; auth.token.permissions[0] grants it more than pull`,
				`config "clusterPull.namespaces[1]": "Apps" is invalid`}},
		{"pull secret of the admin", map[string]string{"auth": `{"token":{}}`, "clusterPull": `{"account":"admin","namespaces":["apps"]}`},
			[]string{`config "clusterPull.account": "admin" is invalid; allowed: an account other than the first`}},
		{"account without namespaces", map[string]string{"accounts": `["admin","nodes"]`, "auth": `{"token":{}}`, "clusterPull": `{"account":"nodes"}`},
			[]string{`config "clusterPull": "account \"nodes\", namespaces []" is invalid; allowed: account and namespaces together`}},
		{"agent", map[string]string{"clusterPull": `{"nodeAgent":{"configPath":"certs.d","namespace":"Agents","image":"busybox"}}`},
			[]string{`config "clusterPull.nodeAgent.configPath": "certs.d" is invalid`, `config "clusterPull.nodeAgent.namespace": "Agents" is invalid`,
				`config "clusterPull.nodeAgent.image": "busybox" is invalid`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(c.config)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	if _, err := parse(map[string]string{"accounts": `["admin","nodes"]`, "auth": `{"token":{}}`, "clusterPull": `{"account":"nodes","namespaces":["apps"],"nodeAgent":{}}`}); err != nil {
		t.Errorf("a pull-only account of token mode with the agent: %v", err)
	}
}

func TestTokenServerExtraConfigIsASecretOfTokenMode(t *testing.T) {
	extra := "ldap_auth:\n  addr: ldap.example.com:636\n"
	c, err := parse(map[string]string{"auth": `{"token":{}}`, "tokenServerExtraConfig": extra})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Args().Auth.Token.ExtraConfig; got != strings.TrimSpace(extra) {
		t.Errorf("ExtraConfig = %q", got)
	}
	if _, err := parse(map[string]string{"tokenServerExtraConfig": extra}); err == nil || !strings.Contains(err.Error(), `config "tokenServerExtraConfig": "(secret)" is invalid; allowed: only with auth.token`) {
		t.Errorf("without token mode: %v", err)
	}
	if _, err := parse(map[string]string{"auth": `{"token":{}}`, "tokenServerExtraConfig": "acl: []\n"}); err == nil ||
		!strings.Contains(err.Error(), `config "auth.token.extraConfig"`) || !strings.Contains(err.Error(), `sets "acl"`) {
		t.Errorf("a reserved key: %v", err)
	}
	_, err = Parse(func(k string) (string, bool) {
		v, ok := map[string]string{"auth": `{"token":{}}`, "tokenServerExtraConfig": extra}[k]
		return v, ok
	}, func(string) bool { return false })
	if err == nil || !strings.Contains(err.Error(), `"tokenServerExtraConfig": a plaintext value is refused`) || strings.Contains(err.Error(), "ldap.example.com") {
		t.Errorf("plaintext: %v", err)
	}
}

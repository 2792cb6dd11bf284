package auth

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// teamToken is the token mode of the README's example: ci pushes under team-ci/, pulls the rest;
// nodes has no rules; anyone pulls public/*.
func teamToken() *Token {
	return &Token{
		Image: "cesanta/docker_auth:1.14.0", Replicas: 2, Lifetime: 15 * time.Minute, SigningKeys: []string{"initial"},
		Permissions: []Permission{
			{Account: "ci", Repositories: []string{"team-ci/*"}, Access: "push"},
			{Account: "ci", Access: "pull"},
			{Account: "ops", Repositories: []string{"infra/*", "tools"}, Actions: []string{"pull", "delete"}},
			{Account: "release", Access: "admin"},
		},
		AnonymousPull: []string{"public/*"},
	}
}

var teamAccounts = []string{"admin", "ci", "nodes", "ops", "release"}

// decide is docker_auth's static ACL decision (authz/acl.go of 1.14.0): the first entry whose
// account, type and name match gives its actions ("*" all), intersected with the requested ones;
// a name between slashes is a regular expression, otherwise path.Match.
func decide(t *testing.T, acl []aclEntry, account, typ, name string, requested []string) []string {
	t.Helper()
	match := func(pattern *string, s string) bool {
		if pattern == nil {
			return true
		}
		p := *pattern
		if len(p) > 2 && p[0] == '/' && p[len(p)-1] == '/' {
			ok, err := regexp.MatchString(p[1:len(p)-1], s)
			if err != nil {
				t.Fatalf("pattern %s: %v", p, err)
			}
			return ok
		}
		ok, _ := path.Match(p, s)
		return ok
	}
	for _, e := range acl {
		// Type and Name are omitted from the YAML when empty: no condition.
		opt := func(p string) *string {
			if p == "" {
				return nil
			}
			return &p
		}
		if !match(e.Match.Account, account) || !match(opt(e.Match.Type), typ) || !match(opt(e.Match.Name), name) {
			continue
		}
		var out []string
		for _, r := range requested {
			if slices.Contains(e.Actions, "*") || slices.Contains(e.Actions, r) {
				out = append(out, r)
			}
		}
		return out
	}
	return nil
}

func TestACLGrantsWhatTheRulesSayAndNothingElse(t *testing.T) {
	acl := teamToken().acl(teamAccounts)
	all := []string{"pull", "push", "delete"}
	for _, c := range []struct {
		account, typ, name string
		want               []string
	}{
		{"admin", "repository", "anything/deep/x", all},
		{"admin", "registry", "catalog", []string{"pull", "push", "delete"}}, // "*": whatever is asked
		{"ci", "repository", "team-ci/app", []string{"pull", "push"}},
		{"ci", "repository", "team-ci/sub/deep", []string{"pull", "push"}}, // * crosses /
		{"ci", "repository", "team-cix/app", []string{"pull"}},             // not under the prefix
		{"ci", "repository", "shared/app", []string{"pull"}},
		{"ci", "registry", "catalog", nil},
		{"nodes", "repository", "shared/app", []string{"pull"}}, // no rules: pull
		{"nodes", "registry", "catalog", nil},
		{"ops", "repository", "infra/db", []string{"pull", "delete"}},
		{"ops", "repository", "tools", []string{"pull", "delete"}},
		{"ops", "repository", "toolsx", nil}, // whole name; no rule matches: nothing
		{"ops", "repository", "shared/app", nil},
		{"ops", "repository", "public/app", []string{"pull"}}, // granted to anyone: logging in takes nothing away
		{"release", "repository", "x/y", all},
		{"release", "registry", "catalog", all},
		{"", "repository", "public/app", []string{"pull"}},
		{"", "repository", "shared/app", nil},
		{"stranger", "repository", "shared/app", nil},
	} {
		got := decide(t, acl, c.account, c.typ, c.name, all)
		if !slices.Equal(got, c.want) {
			t.Errorf("%q %s %s: granted %v, want %v", c.account, c.typ, c.name, got, c.want)
		}
	}
}

func TestPatternRegexpQuotesAndAnchors(t *testing.T) {
	for pattern, cases := range map[string]map[string]bool{
		"team.a/*":  {"team.a/x": true, "teamxa/x": false, "team.a/x/y": true, "pre/team.a/x": false},
		"app?":      {"app1": true, "app": false, "app12": false},
		"*":         {"a": true, "a/b/c": true},
		"lib/nginx": {"lib/nginx": true, "lib/nginx2": false},
	} {
		re := patternRegexp(pattern)
		for name, want := range cases {
			if got := regexp.MustCompile(re[1 : len(re)-1]).MatchString(name); got != want {
				t.Errorf("%s (%s) on %s: %v, want %v", pattern, re, name, got, want)
			}
		}
	}
}

// The rendered auth_config.yml, read back as docker_auth's own field names: the server, token
// settings (the key id is the RFC 7638 thumbprint the registry matches), users with bcrypt
// passwords, the anonymous user only when something is granted, and the ACL in order.
func TestServerConfigHasTheUsersTokenSettingsAndACLInOrder(t *testing.T) {
	lines := []string{"admin:$2y$04$aaaa", "ci:$2y$04$bbbb", "nodes:$2y$04$cccc", "ops:$2y$04$dddd", "release:$2y$04$eeee"}
	raw, err := teamToken().ServerConfig(ServerConfigInput{Issuer: "registry-stack/registry", Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Server struct {
			Addr string `yaml:"addr"`
		} `yaml:"server"`
		Token struct {
			Issuer             string `yaml:"issuer"`
			Expiration         int64  `yaml:"expiration"`
			Certificate        string `yaml:"certificate"`
			Key                string `yaml:"key"`
			DisableLegacyKeyID bool   `yaml:"disable_legacy_key_id"`
		} `yaml:"token"`
		Users map[string]struct {
			Password *string `yaml:"password"`
		} `yaml:"users"`
		ACL []struct {
			Match struct {
				Account *string `yaml:"account"`
				Type    string  `yaml:"type"`
				Name    string  `yaml:"name"`
			} `yaml:"match"`
			Actions []string `yaml:"actions"`
			Comment string   `yaml:"comment"`
		} `yaml:"acl"`
	}
	dec := yaml.NewDecoder(strings.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if cfg.Server.Addr != ":5001" || cfg.Token.Issuer != "registry-stack/registry" || cfg.Token.Expiration != 900 ||
		cfg.Token.Certificate != serverCertFile || cfg.Token.Key != serverKeyFile || !cfg.Token.DisableLegacyKeyID {
		t.Errorf("server/token = %+v %+v", cfg.Server, cfg.Token)
	}
	if len(cfg.Users) != 6 || cfg.Users["ci"].Password == nil || *cfg.Users["ci"].Password != "$2y$04$bbbb" {
		t.Errorf("users = %+v", cfg.Users)
	}
	if u, ok := cfg.Users[""]; !ok || u.Password != nil {
		t.Errorf("anonymous user = %+v, %v; want present without a password (anonymousPull is set)", u, ok)
	}
	var order []string
	for _, e := range cfg.ACL {
		account := "*"
		if e.Match.Account != nil {
			account = *e.Match.Account
		}
		order = append(order, account+" "+e.Match.Name+" "+strings.Join(e.Actions, ","))
	}
	want := []string{
		"admin  *",
		"ci /^team-ci/.*$/ pull,push",
		"ci /^.*$/ pull",
		"ops /^infra/.*$/ pull,delete",
		"ops /^tools$/ pull,delete",
		"release  *",
		"nodes  pull",
		"* /^public/.*$/ pull",
	}
	if !slices.Equal(order, want) {
		t.Errorf("acl order:\n%s\nwant:\n%s", strings.Join(order, "\n"), strings.Join(want, "\n"))
	}

	noAnon := teamToken()
	noAnon.AnonymousPull = nil
	raw, err = noAnon.ServerConfig(ServerConfigInput{Issuer: "i", Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, `"": {}`) || strings.Contains(raw, "\"\":") {
		t.Errorf("anonymous user without anonymousPull:\n%s", raw)
	}
	if _, err := noAnon.ServerConfig(ServerConfigInput{Issuer: "i", Lines: []string{"broken"}}); err == nil {
		t.Error("a line without a hash was rendered")
	}
}

func TestTokenProblemsNameEveryBadValue(t *testing.T) {
	bad := &Token{
		Image: "", Replicas: 0, Lifetime: 30 * time.Second, SigningKeys: []string{"ok", "Bad_Key", "ok"}, SignWith: "other",
		Permissions: []Permission{
			{Account: "admin", Access: "pull"},
			{Account: "nobody", Access: "pull"},
			{Account: "ci", Repositories: []string{"Team/*"}, Access: "write"},
			{Account: "ci", Access: "pull", Actions: []string{"pull"}},
			{Account: "ci", Actions: []string{"pull", "tag", "pull"}},
			{Account: "ci"},
		},
		AnonymousPull: []string{"public/*", "UPPER"},
	}
	var got []string
	for _, p := range bad.Problems("auth.token", []string{"admin", "ci"}) {
		got = append(got, p.Path)
	}
	want := []string{
		"auth.token.image", "auth.token.replicas", "auth.token.lifetime",
		"auth.token.signingKeys[1]", "auth.token.signingKeys[2]", "auth.token.signWith",
		"auth.token.permissions[0].account", "auth.token.permissions[1].account",
		"auth.token.permissions[2].repositories[0]", "auth.token.permissions[2].access",
		"auth.token.permissions[3]",
		"auth.token.permissions[4].actions[1]", "auth.token.permissions[4].actions[2]",
		"auth.token.permissions[5]",
		"auth.token.anonymousPull[1]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := teamToken().Problems("auth.token", teamAccounts); len(p) > 0 {
		t.Errorf("a valid token mode has problems: %v", p)
	}
}

// extraConfig: docker_auth's other backends go into the rendered file beside the stack's keys;
// the stack's own keys, several documents or no mapping are refused without quoting the (secret)
// value; with it, permissions may name that backend's users.
func TestExtraConfigAddsBackendsAndKeepsTheStacksKeys(t *testing.T) {
	tok := teamToken()
	tok.ExtraConfig = "ldap_auth:\n  addr: ldap.example.com:636\n  tls: always\n  bind_password_file: /x\n"
	tok.Permissions = append(tok.Permissions, Permission{Account: "alice", Repositories: []string{"alice/*"}, Access: "push"})
	if p := tok.Problems("auth.token", teamAccounts); len(p) > 0 {
		t.Fatalf("problems: %v", p)
	}
	raw, err := tok.ServerConfig(ServerConfigInput{Issuer: "i", Lines: []string{"admin:$2y$04$a", "ci:$2y$04$b", "nodes:$2y$04$c", "ops:$2y$04$d", "release:$2y$04$e"}})
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	ldap, _ := cfg["ldap_auth"].(map[string]any)
	if ldap["addr"] != "ldap.example.com:636" || cfg["acl"] == nil || cfg["users"] == nil || cfg["token"] == nil {
		t.Errorf("rendered:\n%s", raw)
	}
	if got := decide(t, tok.acl(teamAccounts), "alice", "repository", "alice/app", []string{"pull", "push"}); !slices.Equal(got, []string{"pull", "push"}) {
		t.Errorf("alice on alice/app: %v", got)
	}
	for extra, want := range map[string]string{
		"acl: []\nldap_auth: {}\n":        `sets "acl"`,
		"users:\n  eve: {}\n":             `sets "users"`,
		"ldap_auth: {}\n---\ntoken: {}\n": "more than one YAML document",
		"- just a list":                   "not a YAML mapping",
		"bind_password: [hunter2":         "not a YAML mapping",
	} {
		bad := teamToken()
		bad.ExtraConfig = extra
		ps := bad.Problems("auth.token", teamAccounts)
		if len(ps) != 1 || ps[0].Path != "auth.token.extraConfig" || !strings.Contains(ps[0].Allowed, want) || strings.Contains(ps[0].Error(), "hunter2") {
			t.Errorf("%q: problems %v, want one at auth.token.extraConfig saying %q without the value", extra, ps, want)
		}
	}
	noExtra := teamToken()
	noExtra.Permissions = append(noExtra.Permissions, Permission{Account: "alice", Access: "pull"})
	if ps := noExtra.Problems("auth.token", teamAccounts); len(ps) != 1 || ps[0].Path != "auth.token.permissions[4].account" {
		t.Errorf("an unknown account without extraConfig: %v", ps)
	}
}

func TestAdminPresetOnEveryRepositoryListsTheCatalog(t *testing.T) {
	tok := &Token{Permissions: []Permission{{Account: "release", Repositories: []string{"*"}, Access: "admin"}}}
	if got := decide(t, tok.acl([]string{"admin", "release"}), "release", "registry", "catalog", []string{"*"}); !slices.Equal(got, []string{"*"}) {
		t.Errorf("release on the catalog: %v", got)
	}
}

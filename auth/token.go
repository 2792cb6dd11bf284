package auth

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Token has the registry accept only tokens signed by a token server the stack runs,
// cesanta/docker_auth, which checks each account's password once per token and grants the
// actions its rules allow. nil (Spec.Token) is htpasswd mode.
type Token struct {
	// Image is a pinned cesanta/docker_auth image.
	Image string
	// Replicas of the token server (2 or more: a login must not wait for a restart).
	Replicas int
	// Lifetime of a token (docker_auth's expiration), 1m to 24h. Clients fetch a new one when it
	// runs out; a signing key may be dropped this long after the key that replaces it was added.
	Lifetime time.Duration
	// SigningKeys name the token-signing keys the registry trusts, each a generated RSA key.
	SigningKeys []string
	// SignWith is the key that signs; "" is the first. Rotation, one `pulumi up` each: add a key
	// to SigningKeys (the registry trusts it), sign with it, and a Lifetime later drop the old one.
	SignWith string
	// Permissions are what each account may do, first matching rule first. The first account is
	// always admin and has no rules; an account without rules may pull every repository.
	Permissions []Permission
	// AnonymousPull are repositories anyone may pull without an account; empty: none.
	AnonymousPull []string
	// ExtraConfig is YAML of docker_auth's own settings added to the rendered configuration: its
	// other authentication backends (ldap_auth, oidc_auth, github_auth, gitlab_auth, google_auth,
	// ext_auth ...) and authorizers. It may hold credentials (a bind password, a client secret):
	// the stack keeps it secret. The keys the stack renders (ReservedKeys) are refused. With it,
	// Permissions may name the users of those backends, and the token server may open connections
	// (its NetworkPolicy allows egress). "": static accounts only.
	ExtraConfig string
}

// ReservedKeys are docker_auth's settings the stack renders itself.
var ReservedKeys = []string{"server", "token", "users", "acl"}

// extraConfig parses ExtraConfig: one YAML mapping without the reserved keys.
func (t *Token) extraConfig() (map[string]any, error) {
	if strings.TrimSpace(t.ExtraConfig) == "" {
		return nil, nil
	}
	dec := yaml.NewDecoder(strings.NewReader(t.ExtraConfig))
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		// The parser's message can quote the input, a secret: not passed on.
		return nil, fmt.Errorf("not a YAML mapping of docker_auth settings")
	}
	var more any
	if err := dec.Decode(&more); err == nil {
		return nil, fmt.Errorf("more than one YAML document (docker_auth reads the first only)")
	}
	for _, k := range ReservedKeys {
		if _, ok := out[k]; ok {
			return nil, fmt.Errorf("sets %q, which the stack renders (reserved: %s)", k, strings.Join(ReservedKeys, ", "))
		}
	}
	return out, nil
}

// Permission grants one account actions on repositories.
type Permission struct {
	// Account is one of the stack's accounts, not the first (admin).
	Account string
	// Repositories are patterns (* matches any characters, / included; ? one); empty: all.
	Repositories []string
	// Access is a preset (Presets): admin, push or pull. Exactly one of Access and Actions.
	Access string
	// Actions are pull, push and delete.
	Actions []string
}

// Presets are the access presets: admin may do everything (and list the catalog when granted
// every repository), push may pull and push, pull only pull.
var Presets = map[string][]string{
	"admin": {"pull", "push", "delete"},
	"push":  {"pull", "push"},
	"pull":  {"pull"},
}

// Actions are the repository actions a rule may grant.
var Actions = []string{"pull", "push", "delete"}

var (
	repositoryPattern = regexp.MustCompile(`^[a-z0-9*?]+(?:(?:[._]|__|-+|/)?[a-z0-9*?]+)*$`)
	keyName           = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$`)
)

// Problem is one invalid value: its path (e.g. auth.token.permissions[1].access), the value and
// what is allowed there.
type Problem struct{ Path, Value, Allowed string }

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %q is invalid; allowed: %s", p.Path, p.Value, p.Allowed)
}

// signer is the key that signs.
func (t *Token) signer() string {
	if t.SignWith != "" {
		return t.SignWith
	}
	return t.SigningKeys[0]
}

// Problems names each invalid value by its path under path; accounts are the stack's, the admin
// first.
func (t *Token) Problems(path string, accounts []string) []Problem {
	var out []Problem
	bad := func(at, value, allowed string) { out = append(out, Problem{at, value, allowed}) }
	if t.Image == "" {
		bad(path+".image", "", "a pinned cesanta/docker_auth image")
	}
	if t.Replicas < 1 || t.Replicas > 10 {
		bad(path+".replicas", fmt.Sprint(t.Replicas), "1 to 10 (2 or more keeps logins working through a restart)")
	}
	if t.Lifetime < time.Minute || t.Lifetime > 24*time.Hour || t.Lifetime%time.Second != 0 {
		bad(path+".lifetime", t.Lifetime.String(), "whole seconds from 1m to 24h")
	}
	if len(t.SigningKeys) == 0 {
		bad(path+".signingKeys", "[]", "at least one key name; the registry trusts each, signWith (default the first) signs")
	}
	for i, k := range t.SigningKeys {
		if !keyName.MatchString(k) || slices.Index(t.SigningKeys, k) != i {
			bad(fmt.Sprintf("%s.signingKeys[%d]", path, i), k, "unique names of lowercase letters, digits and '-', up to 20")
		}
	}
	if t.SignWith != "" && !slices.Contains(t.SigningKeys, t.SignWith) {
		bad(path+".signWith", t.SignWith, "one of signingKeys ("+strings.Join(t.SigningKeys, ", ")+"): a key is trusted before it signs")
	}
	for i, p := range t.Permissions {
		at := fmt.Sprintf("%s.permissions[%d]", path, i)
		switch {
		case len(accounts) > 0 && p.Account == accounts[0]:
			bad(at+".account", p.Account, "an account other than the first, which is always admin")
		case t.ExtraConfig != "" && strings.TrimSpace(p.Account) != "" && !strings.ContainsAny(p.Account, " \t\n"):
			// A user of a backend of ExtraConfig (LDAP, OIDC ...): the stack cannot list them.
		case !slices.Contains(accounts, p.Account):
			bad(at+".account", p.Account, "one of the accounts: "+strings.Join(accounts, ", ")+" (or, with extraConfig, a user of its backends)")
		}
		for j, r := range p.Repositories {
			if !repositoryPattern.MatchString(r) {
				bad(fmt.Sprintf("%s.repositories[%d]", at, j), r, "a repository name pattern: lowercase letters, digits, separators (. _ - /), * and ?")
			}
		}
		if (p.Access == "") == (len(p.Actions) == 0) {
			bad(at, fmt.Sprintf("access %q, actions %q", p.Access, p.Actions), "exactly one of access (admin, push, pull) and actions")
		}
		if _, ok := Presets[p.Access]; p.Access != "" && !ok {
			bad(at+".access", p.Access, "admin, push or pull")
		}
		for j, a := range p.Actions {
			if !slices.Contains(Actions, a) || slices.Index(p.Actions, a) != j {
				bad(fmt.Sprintf("%s.actions[%d]", at, j), a, "pull, push or delete, each once")
			}
		}
	}
	if _, err := t.extraConfig(); err != nil {
		bad(path+".extraConfig", "(secret)", "one YAML mapping of docker_auth settings other than "+strings.Join(ReservedKeys, ", ")+": "+err.Error())
	}
	for i, r := range t.AnonymousPull {
		if !repositoryPattern.MatchString(r) {
			bad(fmt.Sprintf("%s.anonymousPull[%d]", path, i), r, "a repository name pattern: lowercase letters, digits, separators (. _ - /), * and ?")
		}
	}
	return out
}

// Validate is Problems as errors.
func (t *Token) Validate(path string, accounts []string) []error {
	var errs []error
	for _, p := range t.Problems(path, accounts) {
		errs = append(errs, p)
	}
	return errs
}

// patternRegexp is docker_auth's form of a repository pattern: a regular expression between
// slashes over the whole name. Its plain patterns use path.Match, whose * stops at a /, and a
// registry's repositories are paths.
func patternRegexp(pattern string) string {
	var b strings.Builder
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	return "/^" + b.String() + "$/"
}

// aclEntry is one of docker_auth's ACL entries (authz.ACLEntry): the first whose match holds
// decides the actions; a request no entry matches is refused.
type aclEntry struct {
	Match   aclMatch `yaml:"match"`
	Actions []string `yaml:"actions,flow"`
	Comment string   `yaml:"comment,omitempty"`
}

type aclMatch struct {
	Account *string `yaml:"account,omitempty"`
	Type    string  `yaml:"type,omitempty"`
	Name    string  `yaml:"name,omitempty"`
}

// acl is docker_auth's ACL for the accounts (the admin first): the admin may do everything; each
// permission's repositories in order; an account without permissions may pull every repository;
// anyone (anonymous or not) pulls AnonymousPull. Everything else is refused.
func (t *Token) acl(accounts []string) []aclEntry {
	acct := func(a string) *string { return &a }
	acl := []aclEntry{{Match: aclMatch{Account: acct(accounts[0])}, Actions: []string{"*"}, Comment: "the first account is admin"}}
	withRules := map[string]bool{}
	for _, p := range t.Permissions {
		withRules[p.Account] = true
		actions := p.Actions
		if p.Access != "" {
			actions = Presets[p.Access]
		}
		if p.Access == "admin" && (len(p.Repositories) == 0 || slices.Contains(p.Repositories, "*")) {
			// Every repository and the catalog.
			acl = append(acl, aclEntry{Match: aclMatch{Account: acct(p.Account)}, Actions: []string{"*"}, Comment: "admin preset"})
			continue
		}
		repos := p.Repositories
		if len(repos) == 0 {
			repos = []string{"*"}
		}
		for _, r := range repos {
			acl = append(acl, aclEntry{Match: aclMatch{Account: acct(p.Account), Type: "repository", Name: patternRegexp(r)}, Actions: slices.Clone(actions)})
		}
	}
	for _, a := range accounts[1:] {
		if !withRules[a] {
			acl = append(acl, aclEntry{Match: aclMatch{Account: acct(a), Type: "repository"}, Actions: []string{"pull"}, Comment: "no rules: pull"})
		}
	}
	// What anyone may pull, an account too when its own rules do not reach it: clients send the
	// credentials they have, and logging in must never take access away.
	for _, r := range t.AnonymousPull {
		acl = append(acl, aclEntry{Match: aclMatch{Type: "repository", Name: patternRegexp(r)}, Actions: []string{"pull"}, Comment: "anyone may pull"})
	}
	return acl
}

// Paths in the token server's pod.
const (
	serverConfigDir  = "/config"
	serverConfigFile = serverConfigDir + "/auth_config.yml"
	serverKeyFile    = serverConfigDir + "/signing.key"
	serverCertFile   = serverConfigDir + "/signing.crt"
	// ServerPort is the token server's plain-HTTP port behind the route (TLS ends there).
	ServerPort = 5001
	// RealmPath is where the route sends token requests, on the registry's own hostnames.
	RealmPath = "/auth"
)

// ServerConfigInput is what the token server's auth_config.yml depends on.
type ServerConfigInput struct {
	Issuer string
	// Lines are the accounts' "name:bcrypt" lines, the admin first.
	Lines []string
}

// ServerConfig renders docker_auth's auth_config.yml: plain HTTP on ServerPort, tokens signed
// with SignWith's key (mounted as serverKeyFile), the accounts as static users, the ACL. The legacy key id is off:
// distribution v3 matches a token's kid against the RFC 7638 thumbprints of its trusted keys.
func (t *Token) ServerConfig(in ServerConfigInput) (string, error) {
	users := map[string]map[string]string{}
	var accounts []string
	for _, line := range in.Lines {
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" || hash == "" {
			return "", fmt.Errorf("auth: token server: account line %q is not name:bcrypt", strings.SplitN(line, ":", 2)[0])
		}
		users[name] = map[string]string{"password": hash}
		accounts = append(accounts, name)
	}
	if len(accounts) == 0 {
		return "", fmt.Errorf("auth: token server: no accounts")
	}
	if len(t.AnonymousPull) > 0 {
		// docker_auth lets a request without credentials in as the user "" only if it exists.
		users[""] = map[string]string{}
	}
	extra, err := t.extraConfig()
	if err != nil {
		return "", fmt.Errorf("auth: token server: extraConfig: %w", err)
	}
	cfg := map[string]any{
		"server": map[string]any{"addr": fmt.Sprintf(":%d", ServerPort)},
		"token": map[string]any{
			"issuer":                in.Issuer,
			"expiration":            int64(t.Lifetime / time.Second),
			"certificate":           serverCertFile,
			"key":                   serverKeyFile,
			"disable_legacy_key_id": true,
		},
		"users": users,
		"acl":   t.acl(accounts),
	}
	for k, v := range extra {
		cfg[k] = v
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("auth: token server config: %w", err)
	}
	return string(out), nil
}

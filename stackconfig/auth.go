package stackconfig

import (
	"fmt"
	"time"

	"github.com/regstack/registry-stack/auth"
)

// Defaults of the auth key's token mode.
const (
	// DefaultTokenServerImage is the docker_auth release token mode was tested with.
	DefaultTokenServerImage = "cesanta/docker_auth:1.14.0"
	defaultTokenReplicas    = 2
	defaultTokenLifetime    = "15m"
	defaultSigningKey       = "initial"
)

const authFields = "token {image, replicas, lifetime, signingKeys, signWith, anonymousPull, permissions [{account, repositories, access, actions}]}"

// rawAuth is the auth key as stack config holds it.
type rawAuth struct {
	Token *struct {
		Image         string   `json:"image"`
		Replicas      *flexInt `json:"replicas"`
		Lifetime      string   `json:"lifetime"`
		SigningKeys   []string `json:"signingKeys"`
		SignWith      string   `json:"signWith"`
		AnonymousPull []string `json:"anonymousPull"`
		Permissions   []struct {
			Account      string   `json:"account"`
			Repositories []string `json:"repositories"`
			Access       string   `json:"access"`
			Actions      []string `json:"actions"`
		} `json:"permissions"`
	} `json:"token"`
}

// validateAuth checks the auth key; each problem names auth.<field>.
func (v *validator) validateAuth(c *Config) {
	if c.AuthRaw == nil || c.AuthRaw.Token == nil {
		if c.TokenServerExtraConfig != "" {
			v.bad("tokenServerExtraConfig", "(secret)", "only with auth.token (the token server's settings)")
		}
		return
	}
	t := c.AuthRaw.Token
	if t.Image != "" {
		v.image("auth.token.image", t.Image)
	}
	lifetime := t.Lifetime
	if lifetime == "" {
		lifetime = defaultTokenLifetime
	}
	parsed := true
	if d, err := time.ParseDuration(lifetime); err != nil || d <= 0 {
		v.bad("auth.token.lifetime", t.Lifetime, "a duration from 1m to 24h (15m, 1h)")
		parsed = false
	}
	for _, p := range c.auth().Token.Problems("auth.token", c.AccountNames) {
		if p.Path == "auth.token.image" || (p.Path == "auth.token.lifetime" && !parsed) {
			continue // checked above, with its default or as written
		}
		v.bad(p.Path, p.Value, p.Allowed)
	}
}

// auth builds the typed auth mode from the key (the zero value: htpasswd).
func (c *Config) auth() auth.Spec {
	if c.AuthRaw == nil || c.AuthRaw.Token == nil {
		return auth.Spec{}
	}
	r := c.AuthRaw.Token
	t := &auth.Token{Image: r.Image, Replicas: intOr(r.Replicas, defaultTokenReplicas), SigningKeys: r.SigningKeys, SignWith: r.SignWith,
		AnonymousPull: r.AnonymousPull, ExtraConfig: c.TokenServerExtraConfig}
	if t.Image == "" {
		t.Image = DefaultTokenServerImage
	}
	lifetime := r.Lifetime
	if lifetime == "" {
		lifetime = defaultTokenLifetime
	}
	t.Lifetime, _ = time.ParseDuration(lifetime) // validated
	if len(t.SigningKeys) == 0 {
		t.SigningKeys = []string{defaultSigningKey}
	}
	for _, p := range r.Permissions {
		t.Permissions = append(t.Permissions, auth.Permission{Account: p.Account, Repositories: p.Repositories, Access: p.Access, Actions: p.Actions})
	}
	return auth.Spec{Token: t}
}

// authDoc is the auth key's description (config table, Pulumi.yaml, schema, README).
var authDoc = fmt.Sprintf("How clients are checked. Empty: htpasswd, every account may push and delete everything. "+
	"{token: {image (default %s), replicas (default %d), lifetime (of a token, default %s, 1m-24h), signingKeys (default [%s]; the keys the registry trusts), signWith (default the first of signingKeys; rotate: add a key, then sign with it, a lifetime later drop the old one, one up each), "+
	"anonymousPull (repository patterns anyone may pull; default none), permissions: [{account (not the first, which is admin), repositories (patterns, * also matches /; default all), "+
	"access (admin, push or pull) or actions (pull, push, delete)}]}}: a token server (cesanta/docker_auth) grants each account what its first matching rule allows; "+
	"an account without rules may only pull. See README, Accounts.", DefaultTokenServerImage, defaultTokenReplicas, defaultTokenLifetime, defaultSigningKey)

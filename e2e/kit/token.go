//go:build e2e

package kit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// tokenCache keeps bearer tokens by user and repository. A nil cache keeps nothing.
type tokenCache struct {
	mu sync.Mutex
	m  map[string]string
}

func newTokenCache() *tokenCache { return &tokenCache{m: map[string]string{}} }

func (t *tokenCache) get(key string) string {
	if t == nil {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[key]
}

func (t *tokenCache) put(key, token string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[key] = token
}

// tokenKey is the cache key of a request: its credentials and repository (the path between /v2/
// and /blobs/, /manifests/ or /tags/), or the path itself elsewhere. The password is part of it:
// a wrong one must never be answered with a token the right one got.
func tokenKey(user, pass, rawURL string) string {
	user += "\x00" + pass
	u, err := url.Parse(rawURL)
	if err != nil {
		return user + "\x00" + rawURL
	}
	p := strings.TrimPrefix(u.Path, "/v2/")
	for _, sep := range []string{"/blobs/", "/manifests/", "/tags/"} {
		if i := strings.LastIndex(p, sep); i > 0 {
			return user + "\x00" + p[:i]
		}
	}
	return user + "\x00" + u.Path
}

// BearerChallenge is a registry's WWW-Authenticate: Bearer challenge.
type BearerChallenge struct{ Realm, Service, Scope string }

// parseBearerChallenge reads `Bearer realm="...",service="...",scope="..."`.
func parseBearerChallenge(h string) (BearerChallenge, bool) {
	rest, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return BearerChallenge{}, false
	}
	var c BearerChallenge
	for rest != "" {
		var k, v string
		k, rest, _ = strings.Cut(rest, "=")
		k = strings.TrimSpace(k)
		if !strings.HasPrefix(rest, `"`) {
			return BearerChallenge{}, false
		}
		end := strings.Index(rest[1:], `"`)
		if end < 0 {
			return BearerChallenge{}, false
		}
		v, rest = rest[1:end+1], strings.TrimPrefix(strings.TrimSpace(rest[end+2:]), ",")
		switch k {
		case "realm":
			c.Realm = v
		case "service":
			c.Service = v
		case "scope":
			c.Scope = v
		}
	}
	return c, c.Realm != ""
}

// fetchToken gets a token for the challenge from its realm (only on the registry's own https
// host: the client dials nothing else). A realm's refusal comes back as refused, its body unread.
func (c *RegistryClient) fetchToken(ctx context.Context, ch BearerChallenge, user, pass string, anonymous bool) (string, *http.Response, error) {
	u, err := url.Parse(ch.Realm)
	if err != nil || u.Scheme != "https" {
		return "", nil, fmt.Errorf("token realm %q is not an https URL", ch.Realm)
	}
	q := u.Query()
	q.Set("service", ch.Service)
	if ch.Scope != "" {
		q.Set("scope", ch.Scope)
	}
	if !anonymous {
		q.Set("account", user)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", nil, err
	}
	if !anonymous {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("token %s: %w", ch.Realm, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", resp, nil
	}
	defer resp.Body.Close()
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, fmt.Errorf("token %s: %w", ch.Realm, err)
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return "", nil, fmt.Errorf("token %s: %w", ch.Realm, err)
	}
	if body.Token == "" {
		body.Token = body.AccessToken
	}
	if body.Token == "" {
		return "", nil, fmt.Errorf("token %s: no token in %d bytes", ch.Realm, len(data))
	}
	return body.Token, nil, nil
}

// Token fetches a token for scope from the registry's realm, as user (anonymous when user is
// ""); the realm's status code comes back with it.
func (c *RegistryClient) Token(ctx context.Context, scope, user, pass string) (string, int, error) {
	resp, err := c.sendOnce(ctx, Request{Method: http.MethodGet, URL: c.URL("/v2/"), NoAuth: true}, "", "", "")
	if err != nil {
		return "", 0, err
	}
	resp.Body.Close()
	ch, ok := parseBearerChallenge(resp.Header.Get("Www-Authenticate"))
	if !ok {
		return "", 0, fmt.Errorf("GET /v2/ answered %d without a Bearer challenge (%q)", resp.StatusCode, resp.Header.Get("Www-Authenticate"))
	}
	ch.Scope = scope
	token, refused, err := c.fetchToken(ctx, ch, user, pass, user == "")
	if err != nil {
		return "", 0, err
	}
	if refused != nil {
		refused.Body.Close()
		return "", refused.StatusCode, nil
	}
	return token, http.StatusOK, nil
}

// TokenClaims are the parts of a registry token the tests look at: the header's key id and the
// access granted.
type TokenClaims struct {
	KeyID  string
	Access []struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
}

// ParseToken decodes a JWT's header and claims without checking its signature (the registry does).
func ParseToken(token string) (*TokenClaims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("token has %d parts, want 3", len(parts))
	}
	var header struct {
		KID string `json:"kid"`
	}
	var claims TokenClaims
	for i, into := range []any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("token part %d: %w", i, err)
		}
		if err := json.Unmarshal(raw, into); err != nil {
			return nil, fmt.Errorf("token part %d: %w", i, err)
		}
	}
	claims.KeyID = header.KID
	return &claims, nil
}

//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// tokenUnderTest is what the token steps share: the images pushed before the switch, which must
// pull in every mode, and the accounts' passwords from before it.
type tokenUnderTest struct {
	before    []*kit.Image
	passwords map[string]string
}

// needTokenServerImage skips a token step when the node has no docker_auth image: the module
// proxy does not serve its source, so a fresh machine cannot build it (README, Tests).
func (f *fixture) needTokenServerImage(ctx context.Context, t *testing.T) {
	t.Helper()
	want := f.Settings.TokenServerImage
	ok, err := f.Kube.NodeHasImage(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		return
	}
	f.Report.Fact("token auth steps SKIPPED: no node has the image %s (not served by the module proxy; build cesanta/docker_auth from its public source and import it, README, Tests)", want)
	t.Skipf("SKIPPED: no node has the token server image %s; build cesanta/docker_auth from its public source and import it into the cluster (README, Tests)", want)
}

// tokenConfig is the auth key of the token steps: ci pushes only under e2e/team-ci/ and pulls
// everything; cluster-a has no rules (pull only); anyone pulls e2e/public/*.
func (f *fixture) tokenConfig(extra map[string]any) string {
	token := map[string]any{
		"image": f.Settings.TokenServerImage,
		"permissions": []map[string]any{
			{"account": "ci", "repositories": []string{f.repo("team-ci/*")}, "access": "push"},
			{"account": "ci", "access": "pull"},
		},
		"anonymousPull": []string{f.repo("public/*")},
	}
	for k, v := range extra {
		token[k] = v
	}
	raw, err := json.Marshal(map[string]any{"token": token})
	if err != nil {
		panic(err)
	}
	return string(raw)
}

// client is a registry client for user through the route (anonymous when user is "").
func (f *fixture) clientAs(user string) *kit.RegistryClient {
	c := f.Client
	if user == "" {
		return c.WithUser("", "")
	}
	return c.WithUser(user, f.Out.Passwords[user])
}

// stepTokenSwitch switches the running stack from htpasswd to token auth and checks every rule
// with real requests through the route: each account logs in with the password it had, a wrong
// password is refused, the pull-only account pulls and is refused a push and a delete, the team
// account pushes only under its prefix, anonymous pulls only what is granted, tokens are never
// issued over plain HTTP, and the images pushed before the switch pull byte for byte.
func (f *fixture) stepTokenSwitch(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	f.needTokenServerImage(ctx, t)
	tok := &tokenUnderTest{passwords: map[string]string{}}
	for _, a := range f.Settings.Accounts() {
		tok.passwords[a] = f.Out.Passwords[a]
	}
	for _, repo := range []string{f.repo("shared/app"), f.repo("public/app"), f.repo("team-ci/app")} {
		im, err := kit.RandomImage(repo, "before", 2, 256<<10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Client.PushImage(ctx, im); err != nil {
			t.Fatal(err)
		}
		tok.before = append(tok.before, im)
	}

	if err := f.Pulumi.SetConfig(ctx, map[string]string{"auth": f.tokenConfig(nil)}); err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up (htpasswd -> token)", "up-token-on")
	if err != nil {
		t.Fatalf("pulumi up (token): %v\nevents:\n%s", err, f.Kube.Events(ctx))
	}
	t.Logf("up token: %s", kit.SummarizeOps(ops))
	for _, o := range ops {
		if o.Op == "replace" || o.Op == "delete" || (o.Op == "create" && strings.Contains(o.URN, "RandomPassword")) {
			t.Errorf("switch to token: %s %s; only the token server may be created, nothing replaced", o.Op, kit.ShortURN(o.URN))
		}
	}
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	// The ingress controller serves the realm's new path a moment after `pulumi up` returns
	// (nothing in the API says when); until then clients of the switched registry get no token.
	start := time.Now()
	var last string
	if err := kit.Poll(ctx, time.Minute, 500*time.Millisecond, func() (bool, error) {
		_, code, err := f.Client.Token(ctx, "", "admin", f.Out.Passwords["admin"])
		last = fmt.Sprintf("%d %v", code, err)
		return err == nil && code == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("the token realm never answered after the switch (last: %s): %v", last, err)
	}
	f.Report.Fact("switch to token: the realm issued tokens %.1f s after pulumi up returned", time.Since(start).Seconds())
	f.token = tok
	for a, pw := range tok.passwords {
		if f.Out.Passwords[a] != pw {
			t.Errorf("account %s: its password changed with the switch", a)
		}
	}
	f.checkTokenRules(ctx, t, "token")
	for _, im := range tok.before {
		if _, err := f.clientAs("ci").PullImage(ctx, im.Tag, im); err != nil {
			t.Errorf("pull %s pushed before the switch, as ci: %v", im.Ref(), err)
		}
	}
	f.checkTokenServerPods(ctx, t)
}

// checkTokenRules makes the requests each rule decides and fails on any other answer.
func (f *fixture) checkTokenRules(ctx context.Context, t *testing.T, mode string) {
	t.Helper()
	status := func(err error) int {
		if err == nil {
			return http.StatusOK
		}
		return kit.HTTPStatus(err)
	}
	var results []string
	expect := func(what string, got, want int, err error) {
		results = append(results, fmt.Sprintf("%s %d", what, got))
		if got != want {
			t.Errorf("%s: %s answered %d (%v), want %d", mode, what, got, err, want)
		}
	}
	push := func(user, repo string) (int, error) {
		im, err := kit.RandomImage(repo, "t"+fmt.Sprint(time.Now().UnixNano()), 1, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.clientAs(user).PushImage(ctx, im)
		if err == nil {
			f.survivors = append(f.survivors, im)
		}
		return status(err), err
	}
	pull := func(user string, im *kit.Image) (int, error) {
		_, err := f.clientAs(user).PullImage(ctx, im.Tag, im)
		return status(err), err
	}
	shared, public := f.token.before[0], f.token.before[1]

	for _, a := range f.Settings.Accounts() {
		code, err := f.clientAs(a).Ping(ctx, false, a, f.Out.Passwords[a])
		expect("login "+a, code, http.StatusOK, err)
	}
	code, err := f.Client.Ping(ctx, false, "ci", "wrong-password-0123456789abcdef")
	expect("login ci with a wrong password", code, http.StatusUnauthorized, err)

	// admin (the first account) may do everything.
	code, err = push("admin", f.repo("tok/admin"))
	expect("admin push", code, http.StatusOK, err)
	victim, err := kit.RandomImage(f.repo("tok/deleteme"), "v", 1, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.clientAs("admin").PushImage(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// cluster-a has no rules: pull only.
	code, err = pull("cluster-a", shared)
	expect("cluster-a pull", code, http.StatusOK, err)
	code, err = push("cluster-a", f.repo("shared/app"))
	expect("cluster-a push", code, http.StatusUnauthorized, err)
	err = f.clientAs("cluster-a").DeleteManifest(ctx, victim.Repo, victim.Digest)
	expect("cluster-a delete", status(err), http.StatusUnauthorized, err)
	// ci pushes under its prefix only (nested repositories too), pulls everything, deletes nothing.
	code, err = push("ci", f.repo("team-ci/app"))
	expect("ci push team-ci/app", code, http.StatusOK, err)
	code, err = push("ci", f.repo("team-ci/sub/deep"))
	expect("ci push team-ci/sub/deep", code, http.StatusOK, err)
	code, err = push("ci", f.repo("shared/app"))
	expect("ci push shared/app", code, http.StatusUnauthorized, err)
	code, err = pull("ci", shared)
	expect("ci pull shared/app", code, http.StatusOK, err)
	err = f.clientAs("ci").DeleteManifest(ctx, victim.Repo, victim.Digest)
	expect("ci delete", status(err), http.StatusUnauthorized, err)
	err = f.clientAs("admin").DeleteManifest(ctx, victim.Repo, victim.Digest)
	expect("admin delete", status(err), http.StatusOK, err)
	// Anonymous: only what anonymousPull grants.
	code, err = pull("", public)
	expect("anonymous pull public/app", code, http.StatusOK, err)
	code, err = pull("", shared)
	expect("anonymous pull shared/app", code, http.StatusUnauthorized, err)
	code, err = push("", f.repo("public/new"))
	expect("anonymous push public/new", code, http.StatusUnauthorized, err)

	// Tokens over plain HTTP: never (the realm is routed on the HTTPS entry point only).
	if f.Settings.IngressHTTPAddr == "" {
		t.Errorf("%s: no E2E_INGRESS_HTTP_ADDR: plain HTTP to the realm cannot be checked", mode)
	} else {
		scope := "repository:" + shared.Repo + ":pull"
		for _, p := range []string{"/auth", "/auth?service=" + f.Settings.Hostname + "&scope=" + scope} {
			for _, user := range []string{"", "cluster-a"} {
				pass := ""
				if user != "" {
					pass = f.Out.Passwords[user]
				}
				r, err := probePlainHTTP(ctx, f.Settings.IngressHTTPAddr, f.Settings.Hostname, p, user, pass)
				if err != nil {
					t.Error(err)
					continue
				}
				results = append(results, fmt.Sprintf("plain-http %s %d", p, r.code))
				if r.code == http.StatusOK {
					t.Errorf("%s: plain HTTP %s (user %q) answered 200: a token is issued without TLS", mode, p, user)
				}
			}
		}
	}
	f.Report.Fact("%s rules: %s", mode, strings.Join(results, "; "))
}

// checkTokenServerPods: the token server runs its replicas Ready, restricted.
func (f *fixture) checkTokenServerPods(ctx context.Context, t *testing.T) {
	t.Helper()
	var pods struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Spec     struct {
				SecurityContext struct {
					RunAsNonRoot *bool `json:"runAsNonRoot"`
				} `json:"securityContext"`
				Containers []struct {
					SecurityContext struct {
						ReadOnlyRootFilesystem   *bool `json:"readOnlyRootFilesystem"`
						AllowPrivilegeEscalation *bool `json:"allowPrivilegeEscalation"`
					} `json:"securityContext"`
				} `json:"containers"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := f.Kube.GetJSON(ctx, true, &pods, "pods", "-l", "app.kubernetes.io/name=docker-auth"); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) < 2 {
		t.Errorf("token server pods: %d, want 2", len(pods.Items))
	}
	for _, p := range pods.Items {
		sc := p.Spec.SecurityContext
		c := p.Spec.Containers[0].SecurityContext
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || c.ReadOnlyRootFilesystem == nil || !*c.ReadOnlyRootFilesystem ||
			c.AllowPrivilegeEscalation == nil || *c.AllowPrivilegeEscalation {
			t.Errorf("token server pod %s is not restricted: %+v %+v", p.Metadata.Name, sc, c)
		}
	}
}

// stepTokenKeyRotation rotates the signing key the README's way (trust a new key, sign with it,
// drop the old one: three `pulumi up`s) while cluster-a pulls in a loop, each pull with a token
// fetched afresh: no pull may fail, and the tokens' key id changes.
func (f *fixture) stepTokenKeyRotation(t *testing.T) {
	need(t, f.token != nil, "token auth")
	ctx := context.Background()
	shared := f.token.before[0]
	kid := func() (string, error) {
		token, code, err := f.Client.Token(ctx, "repository:"+shared.Repo+":pull", "cluster-a", f.Out.Passwords["cluster-a"])
		if err != nil || code != http.StatusOK {
			return "", fmt.Errorf("token for cluster-a: %d %v", code, err)
		}
		claims, err := kit.ParseToken(token)
		if err != nil {
			return "", err
		}
		return claims.KeyID, nil
	}
	oldKID, err := kid()
	if err != nil {
		t.Fatal(err)
	}

	puller := f.clientAs("cluster-a").WithoutTokenCache()
	var mu sync.Mutex
	pulls, failures := 0, []string{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, err := puller.PullImage(ctx, shared.Tag, shared)
			mu.Lock()
			pulls++
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	var stopOnce sync.Once
	stopLoop := func() { stopOnce.Do(func() { close(stop); <-done }) }
	defer stopLoop()

	for _, phase := range []struct{ label, what string }{
		{"trust", `{"signingKeys":["initial","next"]}`},
		{"sign", `{"signingKeys":["initial","next"],"signWith":"next"}`},
		{"drop", `{"signingKeys":["next"]}`},
	} {
		var extra map[string]any
		if err := json.Unmarshal([]byte(phase.what), &extra); err != nil {
			t.Fatal(err)
		}
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"auth": f.tokenConfig(extra)}); err != nil {
			t.Fatal(err)
		}
		ops, err := f.TimedUp(ctx, "pulumi up (signing key: "+phase.label+")", "up-token-key-"+phase.label)
		if err != nil {
			t.Fatalf("pulumi up (%s): %v", phase.label, err)
		}
		t.Logf("up %s: %s", phase.label, kit.SummarizeOps(ops))
		if phase.label == "sign" {
			// docker_auth may take a moment to read its new key; the loop keeps pulling meanwhile.
			if err := kit.Poll(ctx, 3*time.Minute, 2*time.Second, func() (bool, error) {
				k, err := kid()
				return err == nil && k != oldKID, nil
			}); err != nil {
				t.Fatalf("tokens are still signed by the old key (kid %s) after signWith next: %v", oldKID, err)
			}
		}
	}
	time.Sleep(2 * time.Second)
	stopLoop()
	newKID, err := kid()
	if err != nil || newKID == oldKID {
		t.Errorf("key id %s unchanged by the rotation (%v)", oldKID, err)
	}
	if pulls < 20 {
		t.Errorf("only %d pulls during the rotation", pulls)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d pulls failed during the rotation, first: %s", len(failures), pulls, failures[0])
	}
	f.Report.Fact("signing key rotation (trust, sign, drop; 3 ups): %d pulls with fresh tokens, %d failed; kid %s -> %s", pulls, len(failures), oldKID, newKID)
}

// stepTokenBackToHtpasswd switches back: every account logs in with the password it always had,
// every image pulls, and the token server is gone.
func (f *fixture) stepTokenBackToHtpasswd(t *testing.T) {
	need(t, f.token != nil, "token auth")
	ctx := context.Background()
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"auth": kit.Unset}); err != nil {
		t.Fatal(err)
	}
	ops, err := f.TimedUp(ctx, "pulumi up (token -> htpasswd)", "up-token-off")
	if err != nil {
		t.Fatalf("pulumi up (htpasswd): %v", err)
	}
	t.Logf("up htpasswd: %s", kit.SummarizeOps(ops))
	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	for a, pw := range f.token.passwords {
		if f.Out.Passwords[a] != pw {
			t.Errorf("account %s: its password changed", a)
		}
		code, err := f.Client.Ping(ctx, false, a, pw)
		if err != nil || code != http.StatusOK {
			t.Errorf("login %s with its password from before token mode: %d %v", a, code, err)
		}
	}
	for _, im := range f.token.before {
		if _, err := f.Client.PullImage(ctx, im.Tag, im); err != nil {
			t.Errorf("pull %s after the switch back: %v", im.Ref(), err)
		}
	}
	out, err := f.Kube.NS(ctx, "get", "deployments", "-l", "app.kubernetes.io/name=docker-auth", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != "" {
		t.Errorf("token server left after the switch back: %s", out)
	}
	f.survivors = slices.Concat(f.survivors, f.token.before)
	f.token = nil
	f.Report.Fact("htpasswd -> token -> htpasswd: %d accounts log in with their passwords from before, %d images pushed before the switch pull", len(f.Settings.Accounts()), 3)
}

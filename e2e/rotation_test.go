//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Rotation of the generated credentials, as the README's Operations section tells an operator to
// do it: `pulumi up --replace <urn>`. Only the targeted resource may be replaced; everything that
// depends on it (Secrets, Deployment) is updated in place.

// rotationCutoverGrace is how long after `pulumi up --replace` returns the old password may still
// be accepted and the new one refused: the update returns when the last old pod starts to drain,
// and the ingress controller routes to it until its endpoint refresh (measured 1.3-2.0 s on
// Traefik). htpasswd holds one hash per user, so there is no window where both work; the README
// tells users to switch clients a few seconds after the update.
const rotationCutoverGrace = 3 * time.Second

// replaceOps are the engine operations of a replacement (create-before-delete).
var replaceOps = map[string]bool{"replace": true, "create-replacement": true, "delete-replaced": true}

// stateURN finds the URN of a resource by type and name (the last URN segment).
func stateURN(resources []kit.StateResource, typ, name string) string {
	for _, r := range resources {
		if r.Type == typ && strings.HasSuffix(r.URN, "::"+name) {
			return r.URN
		}
	}
	return ""
}

func stateResourceByURN(resources []kit.StateResource, urn string) (kit.StateResource, bool) {
	for _, r := range resources {
		if r.URN == urn {
			return r, true
		}
	}
	return kit.StateResource{}, false
}

// checkOnlyReplaced fails the test unless target is replaced and every other resource is left alone
// or updated in place (no replacement, creation or deletion of a Deployment, Secret, PV, claim or
// anything else).
func checkOnlyReplaced(t *testing.T, what string, ops []kit.StepOp, target string) {
	t.Helper()
	replaced := false
	for _, o := range ops {
		switch {
		case o.URN == target && replaceOps[o.Op]:
			replaced = true
		case o.URN == target && kit.InPlaceOps[o.Op]:
		case !kit.InPlaceOps[o.Op]:
			t.Errorf("%s: %s %s (only %s may be replaced; the rest must be updated in place)", what, o.Op, o.URN, kit.ShortURN(target))
		}
	}
	if !replaced {
		t.Errorf("%s: %s is not replaced: %s", what, kit.ShortURN(target), kit.SummarizeOps(ops))
	}
}

// requireUpdated fails the test unless each named Kubernetes object got an in-place update.
func requireUpdated(t *testing.T, what string, ops []kit.StepOp, resources []kit.StateResource, objects ...[2]string) {
	t.Helper()
	for _, o := range objects {
		urn := k8sURN(resources, o[0], o[1])
		if urn == "" {
			t.Errorf("%s: no %s %s in the state", what, o[0], o[1])
			continue
		}
		found := false
		for _, op := range ops {
			if op.URN == urn && op.Op == "update" {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: %s %s was not updated in place: %s", what, o[0], o[1], kit.SummarizeOps(ops))
		}
	}
}

// compareIdentitiesExcept is compareIdentities for an update that replaced the except URN on
// purpose (none when empty): every other resource keeps its ID, Kubernetes UID and (random/tls)
// outputs.
func compareIdentitiesExcept(t *testing.T, before, after []kit.StateResource, except string) int {
	t.Helper()
	return compareIdentitiesMapped(t, before, after, except, func(urn string) string { return urn })
}

// compareIdentitiesMapped is compareIdentitiesExcept for resources whose URN changed on purpose
// (aliased): newURN maps a URN of before to its URN after.
func compareIdentitiesMapped(t *testing.T, before, after []kit.StateResource, except string, newURN func(string) string) int {
	t.Helper()
	byURN := map[string]kit.StateResource{}
	for _, r := range after {
		byURN[r.URN] = r
	}
	n := 0
	for _, b := range before {
		if b.URN == except || b.Type == "pulumi:pulumi:Stack" || strings.HasPrefix(b.Type, "pulumi:providers:") {
			continue
		}
		a, ok := byURN[newURN(b.URN)]
		if !ok {
			t.Errorf("%s disappeared from the state (looked for %s)", b.URN, newURN(b.URN))
			continue
		}
		if a.ID != b.ID {
			t.Errorf("%s: ID %q -> %q (replaced)", b.URN, b.ID, a.ID)
		}
		switch {
		case strings.HasPrefix(b.Type, "kubernetes:"):
			if ub, ua := k8sUID(b), k8sUID(a); ub != ua {
				t.Errorf("%s: metadata.uid %q -> %q (recreated)", b.URN, ub, ua)
			}
		case strings.HasPrefix(b.Type, "random:"), strings.HasPrefix(b.Type, "tls:"):
			if !reflect.DeepEqual(b.Outputs, a.Outputs) {
				t.Errorf("%s: outputs changed (new secret/key/certificate)", b.URN)
			}
		}
		n++
	}
	return n
}

// htpasswdHashes maps each account of an htpasswd file to its hash.
func htpasswdHashes(file string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(file), "\n") {
		if user, hash, ok := strings.Cut(strings.TrimSpace(l), ":"); ok {
			out[user] = hash
		}
	}
	return out
}

// retire records a secret that was rotated away: it must not show up in plain text anywhere either.
func (f *fixture) retire(name, value string) {
	if f.retired == nil {
		f.retired = map[string]string{}
	}
	f.retired[name] = value
}

// stepRotatePassword replaces the RandomPassword registry-password. The preview and the update
// replace only it; the config Secret and the Deployment are updated in place (pods roll on the
// checksum). Afterwards the old password gets 401, the new one 200, and a pull loop started with the
// new credentials right after the update sees no failure.
func (f *fixture) stepRotatePassword(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urn := stateURN(before, "random:index/randomPassword:RandomPassword", "registry-password")
	if urn == "" {
		t.Fatal("no RandomPassword registry-password in the state")
	}
	// The README's command finds the same URN.
	if shown, err := f.urnFromShowURNs(ctx, "RandomPassword::registry-password"); err != nil {
		t.Error(err)
	} else if shown != urn {
		t.Errorf("pulumi stack --show-urns gives %s, the state %s", shown, urn)
	}
	oldPass := f.Out.Password
	htpasswd, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	oldHash := htpasswdHashes(htpasswd)[f.Out.Username]
	podsBefore, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}

	plan, err := f.Pulumi.PreviewJSON(ctx, "preview-rotate-password", "--replace", urn)
	if err != nil {
		t.Fatal(err)
	}
	var planned []kit.StepOp
	for _, s := range plan.Steps {
		planned = append(planned, kit.StepOp{Op: s.Op, URN: s.URN})
	}
	t.Logf("preview --replace %s: %s", kit.ShortURN(urn), kit.SummarizeOps(planned))
	checkOnlyReplaced(t, "preview --replace registry-password", planned, urn)

	upStart := time.Now()
	ops, err := f.TimedUp(ctx, "pulumi up --replace registry-password", "up-rotate-password", "--replace", urn)
	if err != nil {
		t.Fatal(err)
	}
	upDone := time.Now()
	upTook := upDone.Sub(upStart)
	checkOnlyReplaced(t, "up --replace registry-password", ops, urn)
	requireUpdated(t, "up --replace registry-password", ops, before,
		[2]string{"kubernetes:core/v1:Secret", "registry-config"}, [2]string{"kubernetes:apps/v1:Deployment", f.Out.DeploymentName})

	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Out.Password == oldPass {
		t.Fatal("the password output did not change")
	}
	f.retire("registry password before rotation", oldPass)
	f.retire("bcrypt hash before rotation", oldHash)
	f.Client = f.Client.WithPassword(f.Out.Password)

	// Right after the update (plus the grace, if any): a pull loop with the new credentials, and
	// probes of both passwords every 200 ms until 8 probes in a row see the old one refused and
	// the new one accepted.
	podsAtReturn, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(rotationCutoverGrace - time.Since(upDone))
	pulls := startPullLoop(ctx, f.Client, f.imgKeep, 100*time.Millisecond)
	defer pulls.stop()
	c := f.waitCutover(ctx, f.Out.Username, oldPass, f.Out.Password, upDone)
	probes, oldRefused, newAccepted, lastOldOK, lastNewRefused := c.probes, c.oldRefused, c.newAccepted, c.lastOldOK, c.lastNewRefused
	if c.err != nil {
		t.Errorf("the old password is not refused and the new one accepted consistently after the rotation (errors %v): %v", c.probeErrs, c.err)
	}
	window := "immediately"
	if lastOldOK >= 0 || lastNewRefused >= 0 {
		window = fmt.Sprintf("not immediately: the old password was still accepted %s and the new one still refused %s after pulumi up returned",
			durOrNever(lastOldOK), durOrNever(lastNewRefused))
		if lastOldOK > rotationCutoverGrace || lastNewRefused > rotationCutoverGrace {
			t.Errorf("credential cutover %s; allowed: %s (pods when up returned: %s)", window, rotationCutoverGrace, describePods(podsAtReturn))
		}
	}
	if wait := 10*time.Second - time.Since(upDone); wait > 0 {
		time.Sleep(wait)
	}
	stats := pulls.stop()
	for _, l := range stats.Failures {
		t.Logf("  pull with the new password: %s", l)
	}
	if stats.Failed > 0 {
		t.Errorf("%d of %d pulls with the new password started right after pulumi up failed", stats.Failed, stats.Attempts)
	}
	if stats.OK+stats.OKAfterRetry == 0 {
		t.Errorf("no pull with the new password completed")
	}

	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := compareIdentitiesExcept(t, before, after, urn)
	podsAfter, err := f.Kube.Pods(ctx, kit.RegistryPodSelector)
	if err != nil {
		t.Fatal(err)
	}
	msg := fmt.Sprintf("password rotation (up --replace registry-password, %s): %s; %d other resources kept their identity; pods %v -> %v (when up returned: %s); "+
		"cutover %s: in %d probes from up's return, old password refused %d times, new password accepted %d times; pulls with the new password from right after up: %s",
		upTook.Round(100*time.Millisecond), kit.SummarizeOps(ops), kept, podNames(podsBefore), podNames(podsAfter), describePods(podsAtReturn),
		window, probes, oldRefused, newAccepted, stats.line("pulls"))
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// cutover is what waitCutover saw of one account's password change.
type cutover struct {
	probes, oldRefused, newAccepted int
	// lastOldOK / lastNewRefused: the last time after up the old password was accepted / the new
	// one refused (-1: never).
	lastOldOK, lastNewRefused time.Duration
	probeErrs                 []string
	err                       error // nil once 8 probes in a row saw old → 401 and new → 200
}

// waitCutover probes user's old and new password every 200 ms (up to 90 s) until 8 probes in a row
// see the old one refused and the new one accepted.
func (f *fixture) waitCutover(ctx context.Context, user, oldPass, newPass string, upDone time.Time) cutover {
	c := cutover{lastOldOK: -1, lastNewRefused: -1}
	steady := 0
	c.err = kit.Poll(ctx, 90*time.Second, 200*time.Millisecond, func() (bool, error) {
		c.probes++
		oldCode, err1 := f.Client.Ping(ctx, false, user, oldPass)
		newCode, err2 := f.Client.Ping(ctx, false, user, newPass)
		since := time.Since(upDone)
		if err := errors.Join(err1, err2); err != nil {
			c.probeErrs = append(c.probeErrs, err.Error())
			steady = 0
			return false, nil
		}
		if oldCode == http.StatusUnauthorized {
			c.oldRefused++
		} else {
			c.lastOldOK = since
		}
		if newCode == http.StatusOK {
			c.newAccepted++
		} else {
			c.lastNewRefused = since
		}
		if oldCode == http.StatusUnauthorized && newCode == http.StatusOK {
			steady++
		} else {
			steady = 0
		}
		return steady >= 8, nil
	})
	return c
}

func durOrNever(d time.Duration) string {
	if d < 0 {
		return "never"
	}
	return "until +" + d.Round(100*time.Millisecond).String()
}

// describePods lists pods with their state (Ready, not ready, terminating).
func describePods(pods []kit.PodInfo) string {
	var parts []string
	for _, p := range pods {
		state := "Ready"
		switch {
		case p.Deleted:
			state = "terminating"
		case !p.Ready:
			state = "not ready"
		}
		parts = append(parts, p.Name+" "+state)
	}
	return strings.Join(parts, ", ")
}

// servedCert does a TLS handshake with the Ingress (127.0.0.1) for the registry hostname, verified
// against the stack's CA, and returns the leaf certificate the controller served.
func (f *fixture) servedCert(ctx context.Context) (*x509.Certificate, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(f.Out.CACertPEM)) {
		return nil, errors.New("caCertPem holds no certificate")
	}
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{ServerName: f.Settings.Hostname, RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", f.IngressAddr)
	if err != nil {
		return nil, fmt.Errorf("TLS handshake with %s for %s: %w", f.IngressAddr, f.Settings.Hostname, err)
	}
	defer conn.Close()
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil, fmt.Errorf("TLS dialer returned %T", conn)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no peer certificate")
	}
	return certs[0], nil
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// stepRotateServerCert replaces the LocallySignedCert registry-server-cert while a pull loop runs.
// Only it is replaced (the TLS Secret is updated in place); the controller then serves a certificate
// with a new serial that still verifies against the unchanged CA of the stack output.
func (f *fixture) stepRotateServerCert(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urn := stateURN(before, "tls:index/locallySignedCert:LocallySignedCert", "registry-server-cert")
	if urn == "" {
		t.Fatal("no LocallySignedCert registry-server-cert in the state")
	}
	oldCert, err := f.servedCert(ctx)
	if err != nil {
		t.Fatal(err)
	}
	caBefore := f.Out.CACertPEM
	tlsUID, err := f.Kube.NS(ctx, "get", "secret", "registry-tls", "-o", "jsonpath={.metadata.uid}")
	if err != nil {
		t.Fatal(err)
	}

	var ops []kit.StepOp
	name := "server certificate rotation (up --replace registry-server-cert)"
	err = f.Timed("pulumi up --replace registry-server-cert + pulls", func() (string, error) {
		res, err := f.underLoad(ctx, t, disruption{name: name, tail: 3 * time.Second}, nil, func() error {
			var err error
			ops, err = f.Pulumi.Up(ctx, "up-rotate-cert", "--replace", urn)
			return err
		})
		return kit.SummarizeOps(ops) + "; " + res.Pulls.line("pulls"), err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyReplaced(t, "up --replace registry-server-cert", ops, urn)
	requireUpdated(t, "up --replace registry-server-cert", ops, before, [2]string{"kubernetes:core/v1:Secret", "registry-tls"})

	if err := f.LoadOutputs(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Out.CACertPEM != caBefore {
		t.Errorf("caCertPem changed: clients would have to trust a new CA")
	}
	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := compareIdentitiesExcept(t, before, after, urn)
	r, ok := stateResourceByURN(after, urn)
	if !ok {
		t.Fatalf("%s is gone from the state", urn)
	}
	pemOut, _ := r.Outputs["certPem"].(string)
	stateCert, err := parseCertPEM(pemOut)
	if err != nil {
		t.Fatalf("certPem of %s: %v", kit.ShortURN(urn), err)
	}
	if stateCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
		t.Fatalf("the replaced certificate has the old serial %s", oldCert.SerialNumber)
	}

	// The controller picks up the updated Secret on its own; wait for the new serial.
	var served *x509.Certificate
	start := time.Now()
	err = kit.Poll(ctx, 90*time.Second, time.Second, func() (bool, error) {
		c, err := f.servedCert(ctx)
		if err != nil {
			return false, err
		}
		served = c
		return c.SerialNumber.Cmp(stateCert.SerialNumber) == 0, nil
	})
	if err != nil {
		t.Fatalf("the ingress still serves serial %s, want the new %s: %v", served.SerialNumber, stateCert.SerialNumber, err)
	}
	pickup := time.Since(start)
	ca, err := parseCertPEM(f.Out.CACertPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := served.Verify(x509.VerifyOptions{DNSName: f.Settings.Hostname, Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("the new server certificate does not verify against the stack's CA: %v", err)
	}
	if err := served.CheckSignatureFrom(ca); err != nil {
		t.Errorf("the new server certificate is not signed by the stack's CA: %v", err)
	}
	if uid, err := f.Kube.NS(ctx, "get", "secret", "registry-tls", "-o", "jsonpath={.metadata.uid}"); err != nil {
		t.Error(err)
	} else if uid != tlsUID {
		t.Errorf("Secret registry-tls was recreated (uid %s -> %s), want an in-place update", tlsUID, uid)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("pull after the certificate rotation: %v", err)
	}
	msg := fmt.Sprintf("server certificate rotation: %s; %d other resources kept their identity; served serial %x -> %x (picked up %s after up), "+
		"verifies for %s against the unchanged CA (serial %x), valid until %s",
		kit.SummarizeOps(ops), kept, oldCert.SerialNumber, served.SerialNumber, pickup.Round(100*time.Millisecond), f.Settings.Hostname, ca.SerialNumber, served.NotAfter.Format(time.RFC3339))
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// urnFromShowURNs finds a URN the way the README tells an operator to: in the output of
// `pulumi stack --show-urns`.
func (f *fixture) urnFromShowURNs(ctx context.Context, suffix string) (string, error) {
	out, err := f.Pulumi.Run(ctx, 2*time.Minute, false, "stack", "--show-urns")
	if err != nil {
		return "", err
	}
	// The whole URN: RandomPassword::registry-password must not match ...::registry-password-ci.
	re := regexp.MustCompile(`(?m)urn:[^ \t\n]*` + regexp.QuoteMeta(suffix) + `$`)
	found := map[string]bool{}
	for _, m := range re.FindAllString(out, -1) {
		found[m] = true
	}
	if len(found) != 1 {
		return "", fmt.Errorf("`pulumi stack --show-urns` names %d URNs ending in %s: %v", len(found), suffix, keysOf(found))
	}
	for u := range found {
		return u, nil
	}
	return "", nil
}

// stepRotateRedisPassword replaces the RandomPassword registry-redis-password (the README's
// Operations section says it works like the registry password) while pulls and pushes run: only it
// is replaced, Redis and the registry roll, nothing fails (the cache is an optimisation), and
// afterwards the cache works with the new password.
func (f *fixture) stepRotateRedisPassword(t *testing.T) {
	need(t, f.imgKeep != nil, "pushed image")
	ctx := context.Background()
	before, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	urn, err := f.urnFromShowURNs(ctx, "RandomPassword::registry-redis-password")
	if err != nil {
		t.Fatal(err)
	}
	if want := stateURN(before, "random:index/randomPassword:RandomPassword", "registry-redis-password"); urn != want {
		t.Fatalf("pulumi stack --show-urns gives %s, the state %s", urn, want)
	}
	oldPass, err := f.Kube.SecretValue(ctx, "registry-redis", "password")
	if err != nil {
		t.Fatal(err)
	}
	var ops []kit.StepOp
	name := "Redis password rotation (up --replace registry-redis-password)"
	err = f.Timed("pulumi up --replace registry-redis-password + traffic", func() (string, error) {
		res, err := f.underLoad(ctx, t, disruption{
			name: name, pushRepo: "e2e/redis-rotation", pushLayer: 256 << 10, pushEvery: time.Second, tail: 3 * time.Second,
		}, nil, func() error {
			var err error
			ops, err = f.Pulumi.Up(ctx, "up-rotate-redis-password", "--replace", urn)
			return err
		})
		return kit.SummarizeOps(ops) + "; " + res.Pulls.line("pulls") + "; " + res.Pushes.line("pushes"), err
	})
	if err != nil {
		t.Fatal(err)
	}
	checkOnlyReplaced(t, "up --replace registry-redis-password", ops, urn)
	requireUpdated(t, "up --replace registry-redis-password", ops, before,
		[2]string{"kubernetes:core/v1:Secret", "registry-redis"}, [2]string{"kubernetes:core/v1:Secret", "registry-config"},
		[2]string{"kubernetes:apps/v1:Deployment", f.Out.RedisDeploymentName}, [2]string{"kubernetes:apps/v1:Deployment", f.Out.DeploymentName})
	newPass, err := f.Kube.SecretValue(ctx, "registry-redis", "password")
	if err != nil {
		t.Fatal(err)
	}
	if newPass == oldPass {
		t.Fatal("the Redis password did not change")
	}
	f.retire("redis password before rotation", oldPass)
	after, err := f.Pulumi.ExportResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kept := compareIdentitiesExcept(t, before, after, urn)
	if _, _, err := f.readyRegistryPods(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Kube.WaitReadyPods(ctx, kit.RedisPodSelector, 1, kit.ReadyTimeout); err != nil {
		t.Fatal(err)
	}

	// The registry talks to Redis with the new password: the kept image's descriptors land in the
	// (restarted, empty) cache, and further pulls are hits without errors.
	var keys map[string]bool
	err = kit.Poll(ctx, time.Minute, time.Second, func() (bool, error) {
		if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
			return false, err
		}
		if keys, err = f.RedisCachedBlobs(ctx, f.imgKeep.Blobs()); err != nil {
			return false, err
		}
		for _, b := range f.imgKeep.Blobs() {
			if !keys["blobs::"+b.Digest] {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the cache does not fill after the Redis password rotation (%d of the kept blobs cached): %v", len(keys), err)
	}
	m1, m2 := f.cacheAroundPulls(ctx, t)
	if m2.Hits <= m1.Hits || m2.Errors != m1.Errors {
		t.Errorf("after the Redis password rotation the cache does not serve cleanly: %s -> %s", m1, m2)
	}
	msg := fmt.Sprintf("Redis password rotation: %s; %d other resources kept their identity; afterwards the cache refilled (%d of the kept blobs) and 3 pulls gave +%.0f hits, +%.0f errors",
		kit.SummarizeOps(ops), kept, len(keys), m2.Hits-m1.Hits, m2.Errors-m1.Errors)
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

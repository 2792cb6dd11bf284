//go:build e2e

package kit

import (
	"context"
	"fmt"
	"time"
)

// MirrorAccount is the generated account of a mirror that is not anonymous.
const MirrorAccount = "pull"

// MirrorHost is where the mirror name is reached (the program's default: <name>.<hostname>).
func (f *Fixture) MirrorHost(name string) string { return name + "." + f.Settings.Hostname }

// MirrorSelector selects the pod of the mirror name.
func MirrorSelector(name string) string {
	return "app.kubernetes.io/instance=registry-mirror-" + name + ",app.kubernetes.io/component=mirror"
}

// SetSelfMirrorConfig configures a mirror named name whose upstream is the stack's own registry,
// reached through the ingress controller's in-cluster Service over HTTPS (the sandbox has no
// internet): the controller's in-cluster name joins extraDnsNames (routed, in the certificate),
// the ci account logs the mirror in (its password with --secret), the stack's CA is the
// upstream's private CA. The registry must be deployed (its CA and passwords are in f.Out).
func (f *Fixture) SetSelfMirrorConfig(ctx context.Context, name, size string) error {
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"extraDnsNames": fmt.Sprintf("[%q]", f.Settings.ClusterIngressHost)}); err != nil {
		return err
	}
	for _, c := range []struct {
		field, value string
		secret       bool
	}{
		{"name", name, false},
		{"upstream", "https://" + f.Settings.ClusterIngressHost, false},
		{"username", "ci", false},
		{"password", f.Out.Passwords["ci"], true},
		{"caBundlePem", f.Out.CACertPEM, false},
		{"ttl", "168h", false},
		{"size", size, false},
	} {
		if err := f.Pulumi.SetConfigPath(ctx, "mirrors[0]."+c.field, c.value, c.secret); err != nil {
			return err
		}
	}
	return nil
}

// MirrorClient waits for the deployed mirror name and returns a client through its route with
// its account, and that account's password (from the mirrorPasswords output).
func (f *Fixture) MirrorClient(ctx context.Context, name string) (*RegistryClient, string, error) {
	out, err := f.Pulumi.Outputs(ctx, true)
	if err != nil {
		return nil, "", err
	}
	passwords, _ := out["mirrorPasswords"].(map[string]any)
	password, _ := passwords[name].(string)
	if len(password) < 24 {
		return nil, "", fmt.Errorf("output mirrorPasswords.%s is not a generated password", name)
	}
	if _, err := f.Kube.WaitReadyPods(ctx, MirrorSelector(name), 1, ReadyTimeout); err != nil {
		return nil, "", fmt.Errorf("mirror %s: %w", name, err)
	}
	host := f.MirrorHost(name)
	hc, err := NewHTTPClient(host, f.IngressAddr, []byte(f.Out.CACertPEM))
	if err != nil {
		return nil, "", err
	}
	hc.Timeout = 10 * time.Minute
	c, err := NewRegistryClient(hc, "https://"+host, MirrorAccount, password)
	if err != nil {
		return nil, "", err
	}
	var last string
	err = Poll(ctx, ingressTimeout, time.Second, func() (bool, error) {
		code, err := c.Ping(ctx, false, "", "")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("HTTP %d", code)
		return code == 200, nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("mirror https://%s/v2/ never answered 200 with its account (last: %s)", host, last)
	}
	return c, password, nil
}

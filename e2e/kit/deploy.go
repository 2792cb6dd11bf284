//go:build e2e

package kit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/redis"
)

// What the suite and the bench do with a deployment once `pulumi up` has run: read and check the
// outputs, wait until it is Ready, reach it through the Ingress, look into its Redis.

// LoadOutputs reads and checks the stack outputs of the contract.
func (f *Fixture) LoadOutputs(ctx context.Context) error {
	m, err := f.Pulumi.Outputs(ctx, true)
	if err != nil {
		return err
	}
	get := func(key string, dst *string) error {
		v, ok := m[key].(string)
		if !ok || v == "" {
			return fmt.Errorf("stack output %q missing or not a non-empty string (got %T)", key, m[key])
		}
		*dst = v
		return nil
	}
	o := &f.Out
	for key, dst := range map[string]*string{
		"url": &o.URL, "hostname": &o.Hostname, "namespace": &o.Namespace, "username": &o.Username,
		"password": &o.Password, "caCertPem": &o.CACertPEM, "deploymentName": &o.DeploymentName,
		"serviceName": &o.ServiceName, "gcCronJobName": &o.GCCronJobName, "gcWatchdogCronJobName": &o.GCWatchdogCronJobName,
		"redisDeploymentName": &o.RedisDeploymentName, "storage": &o.Storage,
		"tlsSecretName": &o.TLSSecretName, "routing": &o.Routing,
	} {
		if err := get(key, dst); err != nil {
			return err
		}
	}
	if f.Settings.S3 == nil {
		if err := get("claimName", &o.ClaimName); err != nil {
			return err
		}
	}
	if f.Settings.StorageMode == "hostPath" {
		if err := get("volumeName", &o.VolumeName); err != nil {
			return err
		}
	}
	pw, ok := m["passwords"].(map[string]any)
	if !ok {
		return fmt.Errorf("stack output passwords missing or not a map (got %T)", m["passwords"])
	}
	o.Passwords = map[string]string{}
	for user, v := range pw {
		s, ok := v.(string)
		if !ok || len(s) < 24 {
			return fmt.Errorf("stack output passwords[%s] is not a generated password", user)
		}
		o.Passwords[user] = s
	}
	for _, acct := range f.Settings.Accounts() {
		if _, ok := o.Passwords[acct]; !ok {
			return fmt.Errorf("stack output passwords lacks account %s (has %d accounts)", acct, len(o.Passwords))
		}
	}
	if o.Passwords[o.Username] != o.Password {
		return fmt.Errorf("passwords[%s] differs from the password output", o.Username)
	}
	for _, key := range []string{"dockerLoginCommand", "trustCaCommands", "cranePushExample"} {
		if _, ok := m[key]; !ok {
			return fmt.Errorf("stack output %q missing", key)
		}
	}
	if o.Hostname != f.Settings.Hostname || o.URL != "https://"+f.Settings.Hostname || o.Namespace != f.Settings.Namespace {
		return fmt.Errorf("outputs hostname=%q url=%q namespace=%q do not match the config (%s, %s)", o.Hostname, o.URL, o.Namespace, f.Settings.Hostname, f.Settings.Namespace)
	}
	return nil
}

// WaitReady waits for both Deployments, the registry pods and the claim.
func (f *Fixture) WaitReady(ctx context.Context, replicas int) error {
	for _, d := range []string{f.Out.RedisDeploymentName, f.Out.DeploymentName} {
		if err := f.Kube.RolloutStatus(ctx, d, ReadyTimeout); err != nil {
			return err
		}
	}
	if _, err := f.Kube.WaitReadyPods(ctx, RegistryPodSelector, replicas, ReadyTimeout); err != nil {
		return err
	}
	if _, err := f.Kube.WaitReadyPods(ctx, RedisPodSelector, 1, ReadyTimeout); err != nil {
		return err
	}
	if f.Settings.S3 != nil {
		return nil // no claim: the images are in the bucket
	}
	phase, err := f.Kube.NS(ctx, "get", "pvc", f.Out.ClaimName, "-o", "jsonpath={.status.phase}")
	if err != nil {
		return fmt.Errorf("claim %s: %w", f.Out.ClaimName, err)
	}
	if phase != "Bound" {
		return fmt.Errorf("claim %s is %q, want Bound", f.Out.ClaimName, phase)
	}
	return nil
}

// Connect sets up the path to the Ingress (given address or a port-forward to the controller) and
// the registry client, and waits until the Ingress routes to the registry with the stack's cert.
func (f *Fixture) Connect(ctx context.Context, t *testing.T) error {
	f.IngressAddr = f.Settings.IngressAddr
	if f.IngressAddr == "" {
		ns, svc, _ := strings.Cut(f.Settings.IngressService, "/")
		addrs, stop, err := f.Kube.PortForward(ctx, ns, "svc/"+svc, f.Settings.IngressPort)
		if err != nil {
			return fmt.Errorf("no E2E_INGRESS_ADDR/INGRESS_HTTPS_ADDR and port-forward to %s failed: %w", f.Settings.IngressService, err)
		}
		f.IngressAddr, f.stopPF = addrs[0], stop
		t.Logf("port-forward %s:%s -> %s", f.Settings.IngressService, f.Settings.IngressPort, addrs[0])
	}
	hc, err := NewHTTPClient(f.Settings.Hostname, f.IngressAddr, []byte(f.Out.CACertPEM))
	if err != nil {
		return err
	}
	f.Client, err = NewRegistryClient(hc, "https://"+f.Settings.Hostname, f.Out.Username, f.Out.Password)
	if err != nil {
		return err
	}
	// Until the controller has loaded the Ingress and its TLS Secret it answers 404 or with its
	// default certificate; poll until /v2/ is the registry's 401.
	var last string
	return f.Timed("ingress reachable", func() (string, error) {
		err := Poll(ctx, ingressTimeout, 2*time.Second, func() (bool, error) {
			code, err := f.Client.Ping(ctx, true, "", "")
			if err != nil {
				last = err.Error()
				return false, nil
			}
			last = fmt.Sprintf("HTTP %d", code)
			return code == http.StatusUnauthorized, nil
		})
		if err != nil {
			return "", fmt.Errorf("https://%s/v2/ via %s never answered 401 (last: %s): %w", f.Settings.Hostname, f.IngressAddr, last, err)
		}
		return "https://" + f.Settings.Hostname + " via " + f.IngressAddr, nil
	})
}

// RedisAs runs script (sh) inside the Redis pod with REDISCLI_AUTH set to the password of the
// ACL user whose password is under secretKey in the Redis Secret. The password travels on stdin,
// never on a command line.
func (f *Fixture) RedisAs(ctx context.Context, secretKey, script string) (string, error) {
	// The Redis Secret is named like its Deployment (the component's name).
	pw, err := f.Kube.SecretValue(ctx, f.Out.RedisDeploymentName, secretKey)
	if err != nil {
		return "", err
	}
	return f.Kube.ExecStdin(ctx, "deploy/"+f.Out.RedisDeploymentName, pw+"\n", "sh", "-c",
		"read -r REDISCLI_AUTH; export REDISCLI_AUTH\n"+script)
}

// RedisCachedBlobs tells which of the blobs have a descriptor in the cache (keyed blobs::<digest>
// as the registry writes them), asking as the registry's own ACL user (HGET is one of its
// commands; no user may list keys).
func (f *Fixture) RedisCachedBlobs(ctx context.Context, blobs []Blob) (map[string]bool, error) {
	var script strings.Builder
	for _, b := range blobs {
		fmt.Fprintf(&script, "printf '%%s ' %s; redis-cli -h 127.0.0.1 --user %s HGET blobs::%s digest\n", b.Digest, redis.RegistryUser, b.Digest)
	}
	out, err := f.RedisAs(ctx, redis.PasswordKey, script.String())
	if err != nil {
		return nil, fmt.Errorf("redis-cli HGET in deploy/%s: %w", f.Out.RedisDeploymentName, err)
	}
	keys := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		digest, value, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		if strings.HasPrefix(value, "NOPERM") || strings.HasPrefix(value, "WRONGPASS") || strings.HasPrefix(value, "NOAUTH") {
			return nil, fmt.Errorf("redis-cli HGET as %s: %s", redis.RegistryUser, value)
		}
		if value == digest {
			keys["blobs::"+digest] = true
		}
	}
	return keys, nil
}

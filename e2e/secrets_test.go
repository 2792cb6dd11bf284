//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/redis"
)

// stepStateSecrets reads the real secrets from the cluster and the outputs and checks that the
// Pulumi state (and every other file of the backend: history, backups) holds none of them in plain
// text — neither literally, JSON-escaped, nor base64-encoded (Kubernetes Secret data is base64, so
// an unencrypted Secret input would appear that way) — and no PEM private key.
func (f *fixture) stepStateSecrets(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()

	redisPassword, err := f.Kube.SecretValue(ctx, "registry-redis", "password")
	if err != nil {
		t.Fatal(err)
	}
	// The other Redis ACL users' passwords (GC's flush, the probes).
	redisOthers := map[string]string{}
	for _, key := range []string{redis.FlushPasswordKey, "probe-password"} {
		if redisOthers[key], err = f.Kube.SecretValue(ctx, "registry-redis", key); err != nil {
			t.Fatal(err)
		}
	}
	configYML, err := f.Kube.SecretValue(ctx, "registry-config", "config.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Secret string `yaml:"secret"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(configYML), &cfg); err != nil {
		t.Fatalf("registry-config config.yml is not YAML: %v", err)
	}
	htpasswd, err := f.Kube.SecretValue(ctx, "registry-config", "htpasswd")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"registry password (output password)":    f.Out.Password,
		"redis password (Secret registry-redis)": redisPassword,
		"http.secret (Secret registry-config)":   cfg.HTTP.Secret,
	}
	for key, v := range redisOthers {
		secrets["redis "+key+" (Secret registry-redis)"] = v
	}
	for user, hash := range htpasswdHashes(htpasswd) {
		secrets["bcrypt hash of "+user+" (Secret registry-config htpasswd)"] = hash
	}
	for user, pw := range f.Out.Passwords {
		secrets["password of account "+user+" (output passwords)"] = pw
	}
	for name, v := range f.retired { // rotated away by the rotation steps
		secrets[name] = v
	}
	if f.Settings.S3 != nil { // the S3 phase's static key (secret config, Secret registry-data-s3)
		secrets["S3 secret access key"] = f.Settings.S3.SecretKey
	}
	for name, v := range secrets {
		// Short values would match by accident; the program generates long random ones.
		if len(v) < 12 {
			t.Errorf("%s is only %d characters; cannot be searched for reliably (and is weak)", name, len(v))
			delete(secrets, name)
		}
	}

	files, stateFile, err := f.Pulumi.StateFiles("registry-stack")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for path, data := range files {
		rel, _ := filepath.Rel(f.Pulumi.BackendDir, path)
		for name, v := range secrets {
			for _, needle := range secretNeedles(v) {
				if bytes.Contains(data, []byte(needle)) {
					t.Errorf("%s contains the %s in plain text (as %q...)", rel, name, needle[:min(6, len(needle))])
					found++
					break
				}
			}
		}
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Errorf("%s contains a PEM \"PRIVATE KEY\" block", rel)
			found++
		}
	}

	// The plain (not --show-secrets) outputs must mask the password.
	plain, err := f.Pulumi.Outputs(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := plain["password"].(string); pw != "[secret]" {
		t.Errorf("stack output password is not a secret (shown without --show-secrets)")
	}

	msg := fmt.Sprintf("state: %s (%d bytes) + %d other backend files scanned for %d secrets and PEM private keys: %d found",
		filepath.Base(stateFile), len(files[stateFile]), len(files)-1, len(secrets), found)
	t.Log(msg)
	f.Report.Fact("%s", msg)
}

// secretNeedles are the forms a secret could take in a JSON state file: literal, JSON-escaped,
// and base64 at each of the three byte alignments it can have inside a longer encoded value (the
// characters at the edges depend on the neighbours and are cut off).
func secretNeedles(s string) []string {
	needles := []string{s, jsonString(s)}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, pad), s...))
		start := 0
		if pad > 0 {
			start = 4 // the first 4 characters encode the padding bytes
		}
		end := len(enc) - 4 // the last group may mix in the following bytes
		if end-start >= 8 {
			needles = append(needles, enc[start:end])
		}
	}
	return needles
}

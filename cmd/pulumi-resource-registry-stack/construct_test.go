package main

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/testutil"
	"github.com/regstack/registry-stack/stackconfig"
)

func TestConfigStringIsWhatConfigSetStores(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{"registry.example.com", "registry.example.com"}, {true, "true"}, {2.0, "2"}, {nil, ""},
		{[]any{"ci", "node"}, `["ci","node"]`}, {map[string]any{"minReplicas": 2.0}, `{"minReplicas":2}`},
	} {
		got, _, err := stackconfig.RawValue(c.in)
		if err != nil || got != c.want {
			t.Errorf("RawValue(%#v) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// rawInputs refuses unknown keys and kubeContext, and keeps the secret flag of each input (the
// credential keys are refused in plaintext by the same parser as stack config).
func TestRawInputs(t *testing.T) {
	var raw map[string]string
	var secret map[string]bool
	var err error
	testutil.MustRun(t, nil, func(ctx *pulumi.Context) error {
		raw, secret, err = rawInputs(ctx, pulumi.Map{
			"hostname": pulumi.String("registry.example.com").ToStringOutput(),
			"replicas": pulumi.Float64(3).ToFloat64Output(),
			"accounts": pulumi.ToStringArray([]string{"admin", "ci"}).ToStringArrayOutput(),
			"storage": pulumi.Map{"s3": pulumi.Map{"bucket": pulumi.String("images"),
				"rootDirectory": pulumi.ToSecret(pulumi.String("/hidden"))}}.ToMapOutput(),
			"s3SecretAccessKey": pulumi.ToSecret(pulumi.String("k")).(pulumi.StringOutput),
			"kubeContext":       pulumi.String("prod").ToStringOutput(),
			"hostName":          pulumi.String("typo").ToStringOutput(),
		})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), `input "kubeContext": the Kubernetes provider is given with the resource's providers option`) ||
		!strings.Contains(err.Error(), `input "hostName": not an input`) {
		t.Errorf("error %v, want kubeContext and hostName refused", err)
	}
	if raw["hostname"] != "registry.example.com" || raw["replicas"] != "3" || raw["accounts"] != `["admin","ci"]` ||
		raw["storage"] != `{"s3":{"bucket":"images","rootDirectory":"/hidden"}}` || raw["s3SecretAccessKey"] != "k" {
		t.Errorf("raw inputs %v", raw)
	}
	// A secret field makes its whole structured input secret, as secret config does its key.
	if !secret["storage"] || !secret["s3SecretAccessKey"] || secret["hostname"] {
		t.Errorf("secret flags %v", secret)
	}
}

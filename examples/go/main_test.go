package main

import (
	"testing"

	"github.com/regstack/registry-stack/internal/testutil"
)

// The README's Go example runs, not only builds: a component misconfigured by it would fail here.
func TestTheExampleRuns(t *testing.T) {
	m := testutil.MustRun(t, nil, program)
	ing := m.Get(t, "kubernetes:networking.k8s.io/v1:Ingress", "registry")
	if got := ing.String("spec", "ingressClassName"); got != "traefik" {
		t.Errorf("ingress class %q, want traefik", got)
	}
	if got := ing.String("spec", "rules", 0, "host"); got != "registry.example.com" {
		t.Errorf("host %q", got)
	}
}

package main

import (
	"slices"
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
	// The namespace is the program's: the Ingress is in it and waits for it.
	if n := len(m.OfType("kubernetes:core/v1:Namespace")); n != 1 {
		t.Errorf("%d Namespaces, want only the program's", n)
	}
	ns := "urn:pulumi:" + testutil.Stack + "::" + testutil.Project + "::kubernetes:core/v1:Namespace::registry"
	if got := ing.String("metadata", "namespace"); got != "registry" || !slices.Contains(ing.Dependencies, ns) {
		t.Errorf("Ingress in namespace %q with dependencies %v, want the program's Namespace", got, ing.Dependencies)
	}
}

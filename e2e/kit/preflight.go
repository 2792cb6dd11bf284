//go:build e2e

package kit

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Main is the TestMain of the suite and of the bench (name says which in the message): it refuses
// to run without the tools and a reachable cluster, because a run that silently skips would report
// success without proving anything.
func Main(m *testing.M, name string) {
	if err := preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "%s: refusing to run: %v\n", name, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// preflight checks that pulumi and kubectl are on PATH and that the cluster of KUBECONFIG (and
// E2E_KUBE_CONTEXT) answers and is ready.
func preflight() error {
	for _, tool := range []string{"pulumi", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not on PATH (sandbox: `. /var/cache/regsandbox/sandbox.env`; "+
				"elsewhere install it): %w", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ctxArgs []string
	if c := os.Getenv("E2E_KUBE_CONTEXT"); c != "" {
		ctxArgs = []string{"--context", c}
	}
	kubeconfig := os.Getenv("KUBECONFIG")
	if kubeconfig == "" {
		kubeconfig = "(unset: ~/.kube/config)"
	}
	if _, err := RunCmd(ctx, "", nil, "kubectl", append(ctxArgs, "version", "--request-timeout", "10s")...); err != nil {
		return fmt.Errorf("no reachable Kubernetes cluster (KUBECONFIG=%s): `kubectl version` failed: %w\n"+
			"start one (sandbox: ../shared/sandbox/up.sh; minikube: `minikube start`) or point KUBECONFIG/E2E_KUBE_CONTEXT at it", kubeconfig, err)
	}
	out, err := RunCmd(ctx, "", nil, "kubectl", append(ctxArgs, "get", "--raw", "/readyz", "--request-timeout", "10s")...)
	if err != nil {
		return fmt.Errorf("cluster of KUBECONFIG=%s is not ready: `kubectl get --raw /readyz` failed: %w", kubeconfig, err)
	}
	if strings.TrimSpace(out) != "ok" {
		return fmt.Errorf("cluster of KUBECONFIG=%s is not ready: /readyz says %q", kubeconfig, out)
	}
	return nil
}

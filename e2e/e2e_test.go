//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain refuses to run without the tools and a reachable cluster: an e2e suite that silently
// skips would report success without proving anything.
func TestMain(m *testing.M) {
	if err := preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: refusing to run: %v\n", err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

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
	if _, err := runCmd(ctx, "", nil, "kubectl", append(ctxArgs, "version", "--request-timeout", "10s")...); err != nil {
		return fmt.Errorf("no reachable Kubernetes cluster (KUBECONFIG=%s): `kubectl version` failed: %w\n"+
			"start one (sandbox: ../shared/sandbox/up.sh; minikube: `minikube start`) or point KUBECONFIG/E2E_KUBE_CONTEXT at it", kubeconfig, err)
	}
	out, err := runCmd(ctx, "", nil, "kubectl", append(ctxArgs, "get", "--raw", "/readyz", "--request-timeout", "10s")...)
	if err != nil {
		return fmt.Errorf("cluster of KUBECONFIG=%s is not ready: `kubectl get --raw /readyz` failed: %w", kubeconfig, err)
	}
	if strings.TrimSpace(out) != "ok" {
		return fmt.Errorf("cluster of KUBECONFIG=%s is not ready: /readyz says %q", kubeconfig, out)
	}
	return nil
}

// TestE2E deploys the stack once and runs the steps of issue 3 against it in order. New checks
// (e.g. the fault tests of issue 4) are added as steps: a method on *fixture plus one line here,
// placed where the deployment is in the state the check needs.
func TestE2E(t *testing.T) {
	f := newFixture(t)
	f.runSteps(t, []step{
		{"deploy", (*fixture).stepDeploy, true},
		{"preview_no_changes", (*fixture).stepPreviewNoChanges, false},
		{"bad_config_rejected", (*fixture).stepBadConfigRejected, false},
		{"auth_through_ingress", (*fixture).stepAuth, true},
		{"plain_http_refused", (*fixture).stepPlainHTTPRefused, false},
		{"gc_on_empty_registry", (*fixture).stepGCEmpty, false},
		{"push_pull", (*fixture).stepPushPull, true},
		{"uploads_across_replicas", (*fixture).stepUploadsAcrossReplicas, false},
		{"redis_cache_keys", (*fixture).stepRedisKeys, false},
		{"gc_under_load", (*fixture).stepGCUnderLoad, false},
		// Faults (issue 4): traffic through the Ingress beside each fault; each restores the deployment.
		{"replica_loss", (*fixture).stepReplicaLoss, false},
		{"redis_down", (*fixture).stepRedisDown, false},
		{"restart_all_registry_pods", (*fixture).stepRestartAllRegistryPods, false},
		{"rolling_config_change", (*fixture).stepRollingConfigChange, false},
		{"rotate_password", (*fixture).stepRotatePassword, false},
		{"rotate_one_account", (*fixture).stepRotateOneAccount, false},
		{"rotate_server_cert", (*fixture).stepRotateServerCert, false},
		{"rotate_redis_password", (*fixture).stepRotateRedisPassword, false},
		{"security_pods", (*fixture).stepSecurityPods, false},
		{"security_network", (*fixture).stepSecurityNetwork, false},
		// Routing (issue 8): one deployment moves Ingress -> created Gateway -> existing Gateway ->
		// Ingress with an outside certificate; the later steps run on that last mode.
		{"ingress_source_ranges", (*fixture).stepIngressSourceRanges, false},
		{"gateway_created", (*fixture).stepGatewayCreated, false},
		{"gateway_existing", (*fixture).stepGatewayExisting, false},
		{"tls_secret_source", (*fixture).stepTLSSecretSource, true},
		{"scale_to_3_in_place", (*fixture).stepScaleTo3, false},
		{"no_secret_leaks", (*fixture).stepNoSecretLeaks, false},
		{"state_has_no_plaintext_secrets", (*fixture).stepStateSecrets, false},
		{"destroy", (*fixture).stepDestroy, false},
	})
}

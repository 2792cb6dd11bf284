//go:build e2e

package e2e

import (
	"testing"

	"github.com/regstack/registry-stack/e2e/kit"
)

// TestMain refuses to run without the tools and a reachable cluster: an e2e suite that silently
// skips would report success without proving anything.
func TestMain(m *testing.M) { kit.Main(m, "e2e") }

// TestE2E runs the steps of the suite in two tracks at once, each on a deployment of its own, in
// order within each track. The main track deploys the stack and takes it through every mode and
// fault; the "gc" track holds the steps that must break or load its deployment and then mostly
// wait (a GC pod killed until the lease expires and the watchdog's schedule comes, an HPA waiting
// for metrics-server): beside the main track they cost no wall time. New checks are added as
// steps: a method on *fixture plus one line in a track, placed where the deployment is in the
// state the check needs.
func TestE2E(t *testing.T) {
	t.Run("main", func(t *testing.T) {
		t.Parallel()
		f := &fixture{Fixture: kit.NewFixture(t)}
		f.RunSteps(t, []kit.Step{
			{Name: "deploy", Run: f.stepDeploy, Critical: true},
			{Name: "preview_no_changes", Run: f.stepPreviewNoChanges},
			{Name: "auth_through_ingress", Run: f.stepAuth, Critical: true},
			{Name: "plain_http_refused", Run: f.stepPlainHTTPRefused},
			{Name: "push_pull", Run: f.stepPushPull, Critical: true},
			{Name: "uploads_across_replicas", Run: f.stepUploadsAcrossReplicas},
			{Name: "redis_cache_keys", Run: f.stepRedisKeys},
			// Mirrors (issue 10): a pull-through cache of the registry itself, also pulling through GC.
			{Name: "mirror_add", Run: f.stepMirrorAdd},
			{Name: "mirror_pull_through", Run: f.stepMirrorPullThrough},
			{Name: "mirror_upstream_down", Run: f.stepMirrorUpstreamDown},
			{Name: "gc_under_load", Run: f.stepGCUnderLoad},
			{Name: "mirror_remove", Run: f.stepMirrorRemove},
			// S3 (issue 7): the stack moves to a bucket (the README's migration) and the checks whose
			// outcome depends on the driver run there (s3_test.go); every later step runs on S3.
			{Name: "s3_store_fixture", Run: f.stepS3Store},
			{Name: "s3_switch_migrates", Run: f.stepS3Switch},
			{Name: "s3_gc_on_empty_prefix", Run: f.stepS3GCOnEmptyPrefix},
			{Name: "s3_push_pull", Run: f.onS3Only(f.stepPushPull)},
			{Name: "s3_uploads_across_replicas", Run: f.onS3Only(f.stepUploadsAcrossReplicas)},
			{Name: "s3_objects_in_bucket", Run: f.stepObjectsInBucket},
			{Name: "s3_gc_under_load", Run: f.onS3Only(f.stepGCUnderLoad)},
			{Name: "s3_preview_after_gc", Run: f.onS3Only(f.stepPreviewAfterGC)},
			{Name: "s3_retention_policies", Run: f.onS3Only(f.stepRetention)},
			// Faults (issue 4): traffic through the Ingress beside each fault; each restores the deployment.
			{Name: "replica_loss", Run: f.stepReplicaLoss},
			{Name: "redis_down", Run: f.stepRedisDown},
			{Name: "restart_all_registry_pods", Run: f.stepRestartAllRegistryPods},
			{Name: "rolling_config_change", Run: f.stepRollingConfigChange},
			{Name: "rotate_password", Run: f.stepRotatePassword},
			{Name: "rotate_one_account", Run: f.stepRotateOneAccount},
			{Name: "rotate_server_cert", Run: f.stepRotateServerCert},
			{Name: "rotate_redis_password", Run: f.stepRotateRedisPassword},
			{Name: "security_pods", Run: f.stepSecurityPods},
			{Name: "security_network", Run: f.stepSecurityNetwork},
			// Routing (issue 8): one deployment moves Ingress -> created Gateway -> existing Gateway ->
			// Ingress with an outside certificate; the later steps run on that last mode.
			{Name: "ingress_source_ranges", Run: f.stepIngressSourceRanges},
			{Name: "gateway_created", Run: f.stepGatewayCreated},
			{Name: "gateway_existing", Run: f.stepGatewayExisting},
			{Name: "tls_secret_source", Run: f.stepTLSSecretSource, Critical: true},
			{Name: "scale_to_3_in_place", Run: f.stepScaleTo3},
			// Monitoring (issue 13): metrics scraped in the cluster, the Prometheus Operator objects
			// against the real CRDs, and monitoring turned off again.
			{Name: "monitoring_metrics", Run: f.stepMonitoringMetrics},
			{Name: "no_secret_leaks", Run: f.stepNoSecretLeaks},
			{Name: "state_has_no_plaintext_secrets", Run: f.stepStateSecrets},
			{Name: "destroy", Run: f.stepDestroyKeepsBucket},
		})
	})
	t.Run("gc", func(t *testing.T) {
		t.Parallel()
		f := &fixture{Fixture: kit.NewTrackFixture(t, "gc")}
		f.RunSteps(t, []kit.Step{
			// The track starts as an existing stack would: deployed by the previous release, then
			// upgraded to this program (issue 23: the RegistryStack component).
			{Name: "deploy_previous_release", Run: f.stepDeployPreviousRelease, Critical: true},
			{Name: "upgrade_keeps_data_and_identity", Run: f.stepUpgrade},
			// The CLI alone: invalid config refused before anything exists, and the README's
			// `pulumi config set` examples as written (issue 23).
			{Name: "bad_config_rejected", Run: f.stepBadConfigRejected},
			{Name: "readme_config_commands", Run: f.stepReadmeConfigCommands},
			// Placement (issue 23) on every pod; the GC steps below then run with it.
			{Name: "placement_on_every_pod", Run: f.stepPlacement},
			{Name: "push_pull", Run: f.stepPushPull, Critical: true},
			// Self-healing GC (issue 12): a GC pod killed while read-only, while collecting, and a
			// rolling `pulumi up` during the collector.
			{Name: "gc_killed_read_only", Run: f.stepGCKilledReadOnly},
			{Name: "gc_killed_collecting", Run: f.stepGCKilledCollecting},
			{Name: "gc_pulumi_up_during_collector", Run: f.stepPulumiUpDuringGC},
			// Retention (issue 24): a dry run, then the policies' deletions freed by the same GC run.
			{Name: "retention_policies", Run: f.stepRetention},
			// Growing the claim where its class cannot expand (issue 24): refused, nothing lost.
			{Name: "claim_growth_refused", Run: f.stepClaimGrowthRefused},
			// Token auth (issue 25): they run when the node has the docker_auth image.
			{Name: "token_switch_and_rules", Run: f.stepTokenSwitch},
			{Name: "cluster_pull_node_agent", Run: f.stepClusterPull},
			{Name: "token_key_rotation", Run: f.stepTokenKeyRotation},
			{Name: "token_back_to_htpasswd", Run: f.stepTokenBackToHtpasswd},
			// Autoscaling (issue 13): an HPA that scales while GC runs.
			{Name: "autoscaling_hpa", Run: f.stepAutoscalingHPA},
			// Every Pulumi language (issue 23): the YAML example through the component provider,
			// beside this stack in its namespace.
			{Name: "yaml_program_beside", Run: f.stepYAMLProgram},
			{Name: "no_secret_leaks", Run: f.stepNoSecretLeaks},
			{Name: "state_has_no_plaintext_secrets", Run: f.stepStateSecrets},
			{Name: "destroy", Run: f.stepDestroy},
		})
	})
}

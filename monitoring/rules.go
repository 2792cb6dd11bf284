package monitoring

import (
	"fmt"
	"strings"
	"time"

	"github.com/regstack/registry-stack/gc"
)

// RuleGroup and Rule are a Prometheus rule file's groups (a PrometheusRule's spec.groups).
type RuleGroup struct {
	Name  string `json:"name" yaml:"name"`
	Rules []Rule `json:"rules" yaml:"rules"`
}

// Rule is an alerting rule (Alert set) or a recording rule (Record set).
type Rule struct {
	Alert       string            `json:"alert,omitempty" yaml:"alert,omitempty"`
	Record      string            `json:"record,omitempty" yaml:"record,omitempty"`
	Expr        string            `json:"expr" yaml:"expr"`
	For         string            `json:"for,omitempty" yaml:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// RulesInput is what the alerts need to know about the stack.
type RulesInput struct {
	// Namespace of the stack: every expression selects it.
	Namespace string
	// Instances are the Deployments with a metrics Service, the registry's first (mirrors next).
	Instances []string
	// GCCronJob names the GC CronJob.
	GCCronJob string
	// ReadOnlyFor: how long the registry may stay read-only (above the longest GC run).
	ReadOnlyFor time.Duration
	// GCMaxInterval: the longest gap between two scheduled GC runs; nil: no run is due (suspended).
	GCMaxInterval *time.Duration
	// Cache: the registry uses Redis.
	Cache bool
	// Autoscaler names the HorizontalPodAutoscaler of the registry ("": fixed replicas).
	Autoscaler string
	// CertWarnAt: when the generated certificate needs a `pulumi up` to renew it (nil: not generated).
	CertWarnAt *time.Time
	// Claims are the PersistentVolumeClaims holding images (the registry's and each filesystem
	// mirror's; none with S3): the volume alerts watch them through the kubelet's volume stats.
	Claims []string
}

// claimSelector selects the kubelet's volume stats of the claims in namespace (alerts and panel).
func claimSelector(namespace string, claims []string) string {
	return fmt.Sprintf(`namespace=%q, persistentvolumeclaim=~%q`, namespace, strings.Join(claims, "|"))
}

// VolumeFreeRatio is the share of a claim's capacity below which RegistryVolumeFillingUp fires.
const VolumeFreeRatio = 0.10

// ModeTargetLabel is the series label the ServiceMonitor copies the GC's pod label gc.ModeLabel
// to (podTargetLabels; the operator replaces what a label name may not hold with _).
const ModeTargetLabel = "registry_stack_io_maintenance"

// Rules builds the alert groups. Each expression selects the stack's namespace and its own
// Services, so two stacks in one Prometheus never see each other's series. The kube_* series are
// kube-state-metrics'.
func Rules(in RulesInput) []RuleGroup {
	ns := in.Namespace
	services := make([]string, len(in.Instances))
	deployments := make([]string, len(in.Instances))
	for i, inst := range in.Instances {
		services[i] = MetricsServiceName(inst)
		deployments[i] = inst
	}
	targets := fmt.Sprintf(`namespace=%q, service=~%q`, ns, strings.Join(services, "|"))
	registry := fmt.Sprintf(`namespace=%q, service=%q`, ns, MetricsServiceName(in.Instances[0]))
	stack := map[string]string{"namespace": ns}
	alert := func(name, severity, expr, forDur, summary, description string) Rule {
		labels := map[string]string{"severity": severity}
		for k, v := range stack {
			labels[k] = v
		}
		return Rule{Alert: name, Expr: expr, For: forDur, Labels: labels,
			Annotations: map[string]string{"summary": summary, "description": description}}
	}

	registryRules := []Rule{
		alert("RegistryMetricsAbsent", "warning",
			fmt.Sprintf(`absent(up{%s})`, registry), "15m",
			"No registry metrics from namespace "+ns,
			"Prometheus scrapes no registry-metrics target: the ServiceMonitor is not selected (its labels, the Prometheus' serviceMonitorNamespaceSelector) or the NetworkPolicy does not admit the Prometheus pods (monitoring.scrapeNamespace, monitoring.scrapePodLabels)."),
		alert("RegistryTargetDown", "warning",
			fmt.Sprintf(`up{%s} == 0`, targets), "5m",
			"Registry pod {{ $labels.pod }} is not scraped",
			"The metrics endpoint of {{ $labels.pod }} ({{ $labels.service }}) does not answer: the pod is down or the NetworkPolicy blocks the scrape."),
		alert("RegistryReadOnlyTooLong", "critical",
			fmt.Sprintf(`count by (namespace) (up{%s, %s=%q}) > 0`, registry, ModeTargetLabel, gc.ReadOnlyMode), promDuration(in.ReadOnlyFor),
			"Registry in "+ns+" read-only for more than "+promDuration(in.ReadOnlyFor),
			"Pushes fail while GC holds the registry read-only. A GC run that takes this long is stuck or its store has outgrown monitoring.alerts.readOnlyFor: see README, Monitoring (kubectl logs of the running GC Job; its watchdog returns the registry to read-write when the lease expires)."),
		alert("RegistryHigh5xxRate", "warning",
			fmt.Sprintf(`sum by (namespace, service) (rate(registry_http_requests_total{%s, code=~"5.."}[5m])) / sum by (namespace, service) (rate(registry_http_requests_total{%s}[5m])) > 0.05`, targets, targets), "10m",
			"{{ $labels.service }}: {{ $value | humanizePercentage }} of requests fail with 5xx",
			"More than 5% of the registry's requests fail with a server error: see the registry logs (kubectl logs deploy/"+deployments[0]+")."),
		alert("RegistryStorageErrors", "critical",
			fmt.Sprintf(`sum by (namespace, service) (rate(registry_http_requests_total{%s, handler=~"blob|blob_upload|blob_upload_chunk|manifest", code=~"5.."}[5m])) > 0`, targets), "5m",
			"{{ $labels.service }}: blob and manifest requests fail with 5xx",
			"Reads or writes of the store fail (distribution reports storage driver errors as 5xx on blob and manifest requests): check the volume or the S3 endpoint and its credentials, then the registry logs."),
		alert("RegistryReplicasUnavailable", "warning",
			fmt.Sprintf(`kube_deployment_status_replicas_available{namespace=%q, deployment=~%q} < kube_deployment_spec_replicas{namespace=%q, deployment=~%q}`, ns, strings.Join(deployments, "|"), ns, strings.Join(deployments, "|")), "10m",
			"Deployment {{ $labels.deployment }} has unavailable replicas",
			"Fewer replicas are ready than wanted: kubectl describe pods (scheduling, image pulls, a failing readiness probe when the store is unreachable)."),
	}
	if in.Cache {
		registryRules = append(registryRules, alert("RegistryCacheErrors", "warning",
			fmt.Sprintf(`sum by (namespace, service) (rate(registry_storage_cache_errors_total{%s}[5m])) > 0`, targets), "5m",
			"{{ $labels.service }}: Redis cache errors",
			"The blob descriptor cache fails (Redis down, or its ACL or password out of step): pulls still work from the store, slower. kubectl get pods -l app.kubernetes.io/component=cache; the registry logs name the error."))
	}
	if in.Autoscaler != "" {
		registryRules = append(registryRules, alert("RegistryAutoscalerAtMax", "warning",
			fmt.Sprintf(`kube_horizontalpodautoscaler_status_current_replicas{namespace=%q, horizontalpodautoscaler=%q} >= kube_horizontalpodautoscaler_spec_max_replicas{namespace=%q, horizontalpodautoscaler=%q}`, ns, in.Autoscaler, ns, in.Autoscaler), "30m",
			"The registry runs at autoscaling.maxReplicas",
			"The load needs more replicas than autoscaling.maxReplicas allows: raise it, or the requests (registry.cpuRequest) if the pods are throttled."))
	}
	if in.CertWarnAt != nil {
		registryRules = append(registryRules, alert("RegistryCertificateRenewalDue", "warning",
			fmt.Sprintf(`vector(time()) > %d`, in.CertWarnAt.Unix()), "",
			"The registry's generated certificate is due for renewal since "+in.CertWarnAt.UTC().Format("2006-01-02"),
			"The generated server certificate is renewed only by `pulumi up`, once in its last tenth of validity; half of that is gone: run pulumi up for this stack before the certificate expires."))
	}

	gcJobs := fmt.Sprintf(`kube_job_owner{namespace=%q, owner_kind="CronJob", owner_name=%q}`, ns, in.GCCronJob)
	cronjob := fmt.Sprintf(`namespace=%q, cronjob=%q`, ns, in.GCCronJob)
	gcRules := []Rule{
		alert("RegistryGCFailed", "warning",
			fmt.Sprintf(`(kube_job_status_failed{namespace=%q} > 0) * on (namespace, job_name) group_left () %s`, ns, gcJobs), "",
			"GC Job {{ $labels.job_name }} failed",
			"A garbage collection run failed; the registry was returned to read-write. Read kubectl logs job/{{ $labels.job_name }} --all-containers, then delete the Job to clear this alert."),
	}
	if in.GCMaxInterval != nil {
		limit := *in.GCMaxInterval + in.ReadOnlyFor
		gcRules = append(gcRules, alert("RegistryGCNotRun", "warning",
			fmt.Sprintf(`time() - (max by (namespace, cronjob) (kube_cronjob_status_last_successful_time{%s}) or max by (namespace, cronjob) (kube_cronjob_created{%s})) > %d unless on (namespace, cronjob) (kube_cronjob_spec_suspend{%s} == 1)`,
				cronjob, cronjob, int64(limit.Seconds()), cronjob), "",
			"No successful GC run for more than "+promDuration(limit),
			"No GC run succeeded in the longest gap of gc.schedule plus alerts.readOnlyFor: the CronJob does not start (kubectl get cronjob "+in.GCCronJob+"; events), or each run fails (RegistryGCFailed)."))
	}
	groups := []RuleGroup{{Name: "registry-stack.registry", Rules: registryRules}, {Name: "registry-stack.gc", Rules: gcRules}}
	if len(in.Claims) > 0 {
		claims := claimSelector(ns, in.Claims)
		free := fmt.Sprintf(`kubelet_volume_stats_available_bytes{%s}`, claims)
		runbook := "Free space: retention policies delete old tags and the next GC frees their blobs (README, Retention; " +
			"run GC now with kubectl create job --from=cronjob/" + in.GCCronJob + "); or grow the claim with storage.filesystem.pvcSize " +
			"where its StorageClass allows expansion (README, Operations). A full volume fails every push with 500."
		groups = append(groups, RuleGroup{Name: "registry-stack.storage", Rules: []Rule{
			alert("RegistryVolumeFillingUp", "warning",
				fmt.Sprintf(`%s / kubelet_volume_stats_capacity_bytes{%s} < %g`, free, claims, VolumeFreeRatio), "15m",
				"Claim {{ $labels.persistentvolumeclaim }} has {{ $value | humanizePercentage }} free",
				"Less than "+fmt.Sprint(VolumeFreeRatio*100)+"% of the image volume is free. "+runbook),
			alert("RegistryVolumeFullInADay", "critical",
				fmt.Sprintf(`predict_linear(%s[6h], 24 * 3600) < 0`, free), "1h",
				"Claim {{ $labels.persistentvolumeclaim }} fills up within a day at the current rate",
				"At the rate of the last 6 hours the image volume is full within 24 hours. "+runbook),
		}})
	}
	return groups
}

// promDuration formats a whole-minute duration as Prometheus does ("1h", "90m").
func promDuration(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}

// Package monitoring makes the registry observable: a metrics Service per instance on the debug
// port that only the scrapers may reach, and optionally a Prometheus Operator ServiceMonitor and
// PrometheusRule (the stack's alerts) and a Grafana dashboard.
package monitoring

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	apiextensionsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions/v1"
	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/registry"
)

const (
	// Port is the metrics Services' port: the pods' debug port, which serves the metrics.
	Port = registry.DebugPort
	// PortName is the metrics Services' port name (the ServiceMonitor's endpoint).
	PortName = "metrics"
	// APIVersion of the Prometheus Operator objects.
	APIVersion = "monitoring.coreos.com/v1"
	// ServiceMonitorCRD and PrometheusRuleCRD must exist when their switch is on.
	ServiceMonitorCRD = "servicemonitors.monitoring.coreos.com"
	PrometheusRuleCRD = "prometheusrules.monitoring.coreos.com"
	// DashboardKey is the dashboard's file in its ConfigMap.
	DashboardKey = "registry.json"
)

// Config is the validated monitoring key: a metrics Service per instance that only the
// scrapers may reach, and each optional object (nil: not made).
type Config struct {
	// ScrapeNamespace and ScrapePodLabels select the pods admitted to the debug port (metrics,
	// and also pprof and expvar, which show the Redis cache credential); empty labels admit
	// every pod of the namespace.
	ScrapeNamespace string
	ScrapePodLabels map[string]string
	// ServiceMonitor: a Prometheus Operator ServiceMonitor for the metrics Services.
	ServiceMonitor *ServiceMonitor
	// Alerts: a Prometheus Operator PrometheusRule with the stack's alerts.
	Alerts *Alerts
	// Dashboard: a Grafana dashboard in a ConfigMap that Grafana's sidecar loads.
	Dashboard *Dashboard
}

// ServiceMonitor configures the ServiceMonitor.
type ServiceMonitor struct {
	// Labels select it for a Prometheus (kube-prometheus-stack: release: <its release>).
	Labels   map[string]string
	Interval time.Duration
}

// Alerts configures the PrometheusRule.
type Alerts struct {
	Labels map[string]string
	// ReadOnlyFor is how long the registry may stay read-only before an alert: above the longest
	// GC run of this store.
	ReadOnlyFor time.Duration
	// GCMaxInterval is the longest gap between two scheduled GC runs (from gc.schedule); nil when
	// gc.suspend is set (no run is due).
	GCMaxInterval *time.Duration
}

// Dashboard configures the Grafana dashboard's ConfigMap.
type Dashboard struct {
	// Namespace of the ConfigMap (default: the stack's): where Grafana's sidecar looks.
	Namespace string
	Labels    map[string]string
}

// Target is one registry instance (the registry or a mirror) to scrape.
type Target struct {
	// Instance names the Deployment; its metrics Service is MetricsServiceName(Instance).
	Instance string
	// PodSelector selects its pods.
	PodSelector map[string]string
}

// MonitoringArgs configures the monitoring objects.
type MonitoringArgs struct {
	// Required: the stack's namespace (the rules, ServiceMonitor and dashboard select it by name).
	Namespace pulumi.StringInput
	// Required: the instances, the registry's first.
	Targets []Target
	// Required: who may scrape (Config), and which optional objects to make.
	Config *Config
	// Required with Config.Alerts or Config.Dashboard: the GC CronJob's name.
	GCCronJob string
	// Optional: the registry uses the Redis cache (the cache alert).
	Cache bool
	// Optional: the name of the registry's HorizontalPodAutoscaler (the at-max alert).
	Autoscaler string
	// Optional: the claims holding images (the volume alerts and panel; none with S3).
	Claims []string
	// Optional: the generated certificate's end of validity (RFC 3339; "" none) and how long
	// before it the renewal alert fires.
	CertNotAfter   pulumi.StringInput
	CertWarnBefore time.Duration
}

// Monitoring is the metrics Services and the optional monitoring objects.
type Monitoring struct {
	pulumi.ResourceState

	// MetricsServiceNames are the metrics Services, the registry's first.
	MetricsServiceNames pulumi.StringArrayOutput `pulumi:"metricsServiceNames"`
}

func (a *MonitoringArgs) validate() error {
	if a.Namespace == nil || len(a.Targets) == 0 || a.Config == nil {
		return fmt.Errorf("monitoring: Namespace, Targets and Config are required")
	}
	if (a.Config.Alerts != nil || a.Config.Dashboard != nil) && a.GCCronJob == "" {
		return fmt.Errorf("monitoring: GCCronJob is required with alerts or the dashboard")
	}
	return nil
}

// NewMonitoring registers the monitoring objects.
func NewMonitoring(ctx *pulumi.Context, name string, args *MonitoringArgs, opts ...pulumi.ResourceOption) (*Monitoring, error) {
	if err := args.validate(); err != nil {
		return nil, err
	}
	comp := &Monitoring{}
	if err := ctx.RegisterComponentResource("registry-stack:index:Monitoring", name, comp, opts...); err != nil {
		return nil, fmt.Errorf("monitoring: register component %q: %w", name, err)
	}
	parent := pulumi.Parent(comp)
	cfg := args.Config

	var services pulumi.StringArray
	for _, t := range args.Targets {
		svcName := MetricsServiceName(t.Instance)
		labels := kube.StringMap(MetricsServiceLabels(t.Instance))
		svc, err := corev1.NewService(ctx, svcName, &corev1.ServiceArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(svcName), Namespace: args.Namespace, Labels: labels},
			Spec:     MetricsServiceSpec(t.PodSelector),
		}, parent)
		if err != nil {
			return nil, fmt.Errorf("monitoring: service %s: %w", svcName, err)
		}
		services = append(services, svc.Metadata.Name().Elem())
		if _, err := networkingv1.NewNetworkPolicy(ctx, svcName, &networkingv1.NetworkPolicyArgs{
			Metadata: &metav1.ObjectMetaArgs{Name: pulumi.String(svcName), Namespace: args.Namespace, Labels: labels},
			Spec:     ScrapePolicySpec(t.PodSelector, cfg.ScrapeNamespace, cfg.ScrapePodLabels),
		}, parent); err != nil {
			return nil, fmt.Errorf("monitoring: network policy %s: %w", svcName, err)
		}
	}
	instances := make([]string, len(args.Targets))
	for i, t := range args.Targets {
		instances[i] = t.Instance
	}

	if sm := cfg.ServiceMonitor; sm != nil {
		crd, err := requireCRD(ctx, "monitoring.serviceMonitor", ServiceMonitorCRD, parent)
		if err != nil {
			return nil, err
		}
		if _, err := apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String(APIVersion),
			Kind:       pulumi.String("ServiceMonitor"),
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name), Namespace: args.Namespace,
				Labels: kube.StringMap(withLabels(kube.Labels("registry", name, "metrics"), sm.Labels)),
			},
			OtherFields: kubernetes.UntypedArgs{"spec": ServiceMonitorSpec(args.Namespace, sm.Interval)},
		}, parent, pulumi.DependsOn([]pulumi.Resource{crd})); err != nil {
			return nil, fmt.Errorf("monitoring: service monitor: %w", err)
		}
	}

	if al := cfg.Alerts; al != nil {
		crd, err := requireCRD(ctx, "monitoring.alerts", PrometheusRuleCRD, parent)
		if err != nil {
			return nil, err
		}
		notAfter := pulumi.String("").ToStringOutput()
		if args.CertNotAfter != nil {
			notAfter = args.CertNotAfter.ToStringOutput()
		}
		groups := pulumi.All(args.Namespace, notAfter).ApplyT(func(v []any) ([]any, error) {
			end := v[1].(string)
			in := RulesInput{
				Namespace: v[0].(string), Instances: instances, GCCronJob: args.GCCronJob,
				ReadOnlyFor: al.ReadOnlyFor, GCMaxInterval: al.GCMaxInterval, Cache: args.Cache, Autoscaler: args.Autoscaler,
				Claims: args.Claims,
			}
			if end != "" {
				t, err := time.Parse(time.RFC3339, end)
				if err != nil {
					return nil, fmt.Errorf("monitoring: certificate end of validity %q: %w", end, err)
				}
				warn := t.Add(-args.CertWarnBefore)
				in.CertWarnAt = &warn
			}
			return untyped(Rules(in))
		}).(pulumi.ArrayOutput)
		if _, err := apiextensions.NewCustomResource(ctx, name+"-alerts", &apiextensions.CustomResourceArgs{
			ApiVersion: pulumi.String(APIVersion),
			Kind:       pulumi.String("PrometheusRule"),
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name + "-alerts"), Namespace: args.Namespace,
				Labels: kube.StringMap(withLabels(kube.Labels("registry", name, "alerts"), al.Labels)),
			},
			OtherFields: kubernetes.UntypedArgs{"spec": pulumi.Map{"groups": groups}},
		}, parent, pulumi.DependsOn([]pulumi.Resource{crd})); err != nil {
			return nil, fmt.Errorf("monitoring: prometheus rule: %w", err)
		}
	}

	if d := cfg.Dashboard; d != nil {
		board := args.Namespace.ToStringOutput().ApplyT(func(ns string) (string, error) {
			return DashboardJSON(DashboardInput{Namespace: ns, Instances: instances, GCCronJob: args.GCCronJob, Mirrors: len(instances) > 1, Claims: args.Claims})
		}).(pulumi.StringOutput)
		// Derived from the stack's namespace even when another is named: the ConfigMap then waits
		// for a Namespace the stack creates.
		ns := args.Namespace.ToStringOutput().ApplyT(func(ns string) string {
			if d.Namespace != "" {
				return d.Namespace
			}
			return ns
		}).(pulumi.StringOutput)
		if _, err := corev1.NewConfigMap(ctx, name+"-dashboard", &corev1.ConfigMapArgs{
			Metadata: &metav1.ObjectMetaArgs{
				Name: pulumi.String(name + "-dashboard"), Namespace: ns,
				Labels: kube.StringMap(withLabels(kube.Labels("registry", name, "dashboard"), d.Labels)),
			},
			Data: pulumi.StringMap{DashboardKey: board},
		}, parent); err != nil {
			return nil, fmt.Errorf("monitoring: dashboard: %w", err)
		}
	}

	comp.MetricsServiceNames = services.ToStringArrayOutput()
	if err := ctx.RegisterResourceOutputs(comp, pulumi.Map{"metricsServiceNames": comp.MetricsServiceNames}); err != nil {
		return nil, fmt.Errorf("monitoring: register outputs: %w", err)
	}
	return comp, nil
}

// requireCRD reads a CRD, in preview too: with the switch on and the CRD absent the preview
// fails, and the resource's name says which key needs which CRD (the engine prints it).
func requireCRD(ctx *pulumi.Context, key, crd string, parent pulumi.ResourceOption) (*apiextensionsv1.CustomResourceDefinition, error) {
	name := fmt.Sprintf("%s-needs-the-prometheus-operator-crd-%s", key, crd)
	res, err := apiextensionsv1.GetCustomResourceDefinition(ctx, name, pulumi.ID(crd), nil, parent)
	if err != nil {
		return nil, fmt.Errorf("monitoring: %s is on, but the CRD %s is unreadable: %w", key, crd, err)
	}
	return res, nil
}

// MetricsServiceLabels label an instance's metrics Service: the ServiceMonitor selects them.
func MetricsServiceLabels(instance string) map[string]string {
	return kube.Labels("registry", instance, "metrics")
}

// MetricsServiceSpec is a ClusterIP Service on the debug port only: it is in no route.
func MetricsServiceSpec(podSelector map[string]string) *corev1.ServiceSpecArgs {
	return &corev1.ServiceSpecArgs{
		Type:     pulumi.String("ClusterIP"),
		Selector: kube.StringMap(podSelector),
		Ports: corev1.ServicePortArray{&corev1.ServicePortArgs{
			Name: pulumi.String(PortName), Port: pulumi.Int(Port), TargetPort: pulumi.String(registry.DebugPortName),
		}},
	}
}

// ScrapePolicySpec admits the debug port from the scraper pods only: they must be in the scrape
// namespace and carry every scrape label (one peer: both selectors apply together). The debug
// port also serves pprof and expvar, and expvar shows the Redis cache's credential.
func ScrapePolicySpec(podSelector map[string]string, scrapeNamespace string, scrapeLabels map[string]string) *networkingv1.NetworkPolicySpecArgs {
	peer := &networkingv1.NetworkPolicyPeerArgs{
		NamespaceSelector: &metav1.LabelSelectorArgs{MatchLabels: pulumi.StringMap{
			"kubernetes.io/metadata.name": pulumi.String(scrapeNamespace),
		}},
	}
	if len(scrapeLabels) > 0 {
		peer.PodSelector = &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(scrapeLabels)}
	}
	return &networkingv1.NetworkPolicySpecArgs{
		PodSelector: &metav1.LabelSelectorArgs{MatchLabels: kube.StringMap(podSelector)},
		PolicyTypes: pulumi.ToStringArray([]string{"Ingress"}),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{&networkingv1.NetworkPolicyIngressRuleArgs{
			From: networkingv1.NetworkPolicyPeerArray{peer},
			Ports: networkingv1.NetworkPolicyPortArray{&networkingv1.NetworkPolicyPortArgs{
				Protocol: pulumi.String("TCP"), Port: pulumi.Int(Port),
			}},
		}},
	}
}

// ServiceMonitorSpec scrapes every metrics Service of the stack's namespace, and copies the GC's
// read-only pod label onto the series (the read-only alert needs no kube-state-metrics).
func ServiceMonitorSpec(namespace pulumi.StringInput, interval time.Duration) pulumi.Map {
	return pulumi.Map{
		"selector": pulumi.Map{"matchLabels": pulumi.StringMap{
			"app.kubernetes.io/component": pulumi.String("metrics"),
			"app.kubernetes.io/part-of":   pulumi.String(kube.PartOf),
		}},
		"namespaceSelector": pulumi.Map{"matchNames": pulumi.StringArray{namespace}},
		"podTargetLabels":   pulumi.ToStringArray([]string{gc.ModeLabel}),
		"endpoints": pulumi.Array{pulumi.Map{
			"port": pulumi.String(PortName), "path": pulumi.String(registry.MetricsPath), "scheme": pulumi.String("http"),
			"interval": pulumi.String(interval.String()),
		}},
	}
}

// untyped turns the rule groups into the plain values the provider sends (by their JSON names).
func untyped(groups []RuleGroup) ([]any, error) {
	raw, err := json.Marshal(groups)
	if err != nil {
		return nil, fmt.Errorf("monitoring: rules: %w", err)
	}
	var out []any
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("monitoring: rules: %w", err)
	}
	return out, nil
}

// withLabels adds the user's labels (a Prometheus' or Grafana's selector) to the standard ones.
func withLabels(std, extra map[string]string) map[string]string {
	for k, v := range extra {
		std[k] = v
	}
	return std
}

// MetricsServiceName is the metrics Service of an instance.
func MetricsServiceName(instance string) string { return instance + "-metrics" }

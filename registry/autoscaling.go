package registry

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	apiextensionsv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions/v1"
	autoscalingv2 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/autoscaling/v2"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

const (
	// ScaledObjectCRD must exist for autoscaling.keda.
	ScaledObjectCRD = "scaledobjects.keda.sh"
	// KEDAAPIVersion of the ScaledObject.
	KEDAAPIVersion = "keda.sh/v1alpha1"
	// scaleDownWindowSeconds and scaleDownPodsPerMinute: replicas go one at a time, after the load
	// has been lower for five minutes (each leaving pod drains its uploads first).
	scaleDownWindowSeconds = 300
	scaleDownPodsPerMinute = 1
)

// Autoscaling is the validated autoscaling key: the registry's replicas belong to an autoscaler
// between MinReplicas and MaxReplicas. Exactly one of Resources and KEDA is set.
type Autoscaling struct {
	MinReplicas int
	MaxReplicas int
	// Resources: a HorizontalPodAutoscaler on CPU and/or memory utilization of the requests.
	Resources *ResourceTargets
	// KEDA: a KEDA ScaledObject on a Prometheus query.
	KEDA *KEDA
}

// ResourceTargets are average utilizations in percent of the requests; 0 is not a target.
type ResourceTargets struct {
	CPUUtilization    int
	MemoryUtilization int
}

// KEDA scales on a Prometheus query: replicas = ceil(query / Threshold).
type KEDA struct {
	ServerAddress string
	Query         string
	Threshold     string
}

// AutoscalerName is the HorizontalPodAutoscaler that owns the replica count: the stack's own, or
// the one KEDA makes for the ScaledObject.
func AutoscalerName(name string, a *Autoscaling) string {
	if a.KEDA != nil {
		return "keda-hpa-" + name
	}
	return name
}

// newAutoscaler registers the HorizontalPodAutoscaler or, with KEDA, the ScaledObject of the
// Deployment, which then has no replica count of its own.
func newAutoscaler(ctx *pulumi.Context, name string, a *RegistryArgs, labels pulumi.StringMap, deployment pulumi.StringInput, parent pulumi.ResourceOption) error {
	meta := &metav1.ObjectMetaArgs{Name: pulumi.String(name), Namespace: a.Namespace, Labels: labels}
	if k := a.Autoscaling.KEDA; k != nil {
		// Read in preview too: without KEDA the preview fails, naming the key and the CRD.
		crd, err := apiextensionsv1.GetCustomResourceDefinition(ctx, "autoscaling.keda-needs-the-keda-crd-"+ScaledObjectCRD,
			pulumi.ID(ScaledObjectCRD), nil, parent)
		if err != nil {
			return fmt.Errorf("registry: autoscaling.keda is set, but the CRD %s is unreadable: %w", ScaledObjectCRD, err)
		}
		if _, err := apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
			ApiVersion:  pulumi.String(KEDAAPIVersion),
			Kind:        pulumi.String("ScaledObject"),
			Metadata:    meta,
			OtherFields: kubernetes.UntypedArgs{"spec": ScaledObjectSpec(deployment, a.Autoscaling)},
		}, parent, pulumi.DependsOn([]pulumi.Resource{crd})); err != nil {
			return fmt.Errorf("registry: scaled object: %w", err)
		}
		return nil
	}
	if _, err := autoscalingv2.NewHorizontalPodAutoscaler(ctx, name, &autoscalingv2.HorizontalPodAutoscalerArgs{
		Metadata: meta,
		Spec:     HPASpec(deployment, a.Autoscaling),
	}, parent); err != nil {
		return fmt.Errorf("registry: horizontal pod autoscaler: %w", err)
	}
	return nil
}

// HPASpec scales the Deployment on the average utilization of the pods' requests.
func HPASpec(deployment pulumi.StringInput, a *Autoscaling) *autoscalingv2.HorizontalPodAutoscalerSpecArgs {
	var metrics autoscalingv2.MetricSpecArray
	for _, m := range []struct {
		resource string
		percent  int
	}{{"cpu", a.Resources.CPUUtilization}, {"memory", a.Resources.MemoryUtilization}} {
		if m.percent == 0 {
			continue
		}
		metrics = append(metrics, &autoscalingv2.MetricSpecArgs{
			Type: pulumi.String("Resource"),
			Resource: &autoscalingv2.ResourceMetricSourceArgs{
				Name:   pulumi.String(m.resource),
				Target: &autoscalingv2.MetricTargetArgs{Type: pulumi.String("Utilization"), AverageUtilization: pulumi.Int(m.percent)},
			},
		})
	}
	return &autoscalingv2.HorizontalPodAutoscalerSpecArgs{
		ScaleTargetRef: &autoscalingv2.CrossVersionObjectReferenceArgs{
			ApiVersion: pulumi.String("apps/v1"), Kind: pulumi.String("Deployment"), Name: deployment,
		},
		MinReplicas: pulumi.Int(a.MinReplicas),
		MaxReplicas: pulumi.Int(a.MaxReplicas),
		Metrics:     metrics,
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehaviorArgs{
			ScaleDown: &autoscalingv2.HPAScalingRulesArgs{
				StabilizationWindowSeconds: pulumi.Int(scaleDownWindowSeconds),
				Policies: autoscalingv2.HPAScalingPolicyArray{&autoscalingv2.HPAScalingPolicyArgs{
					Type: pulumi.String("Pods"), Value: pulumi.Int(scaleDownPodsPerMinute), PeriodSeconds: pulumi.Int(60),
				}},
			},
		},
	}
}

// ScaledObjectSpec scales the Deployment on a Prometheus query, with the HPA's scale-down pace.
func ScaledObjectSpec(deployment pulumi.StringInput, a *Autoscaling) pulumi.Map {
	return pulumi.Map{
		"scaleTargetRef":  pulumi.Map{"apiVersion": pulumi.String("apps/v1"), "kind": pulumi.String("Deployment"), "name": deployment},
		"minReplicaCount": pulumi.Int(a.MinReplicas),
		"maxReplicaCount": pulumi.Int(a.MaxReplicas),
		"advanced": pulumi.Map{"horizontalPodAutoscalerConfig": pulumi.Map{"behavior": pulumi.Map{
			"scaleDown": pulumi.Map{
				"stabilizationWindowSeconds": pulumi.Int(scaleDownWindowSeconds),
				"policies": pulumi.Array{pulumi.Map{
					"type": pulumi.String("Pods"), "value": pulumi.Int(scaleDownPodsPerMinute), "periodSeconds": pulumi.Int(60),
				}},
			},
		}}},
		"triggers": pulumi.Array{pulumi.Map{
			"type": pulumi.String("prometheus"),
			"metadata": pulumi.StringMap{
				"serverAddress": pulumi.String(a.KEDA.ServerAddress),
				"query":         pulumi.String(a.KEDA.Query),
				"threshold":     pulumi.String(a.KEDA.Threshold),
			},
		}},
	}
}

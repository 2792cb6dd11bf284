package registry

import (
	"reflect"
	"testing"
)

const (
	tHPA          = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
	tScaledObject = "kubernetes:keda.sh/v1alpha1:ScaledObject"
	tCRD          = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
)

func hpaScaling() *Autoscaling {
	return &Autoscaling{MinReplicas: 2, MaxReplicas: 5, Resources: &ResourceTargets{CPUUtilization: 60, MemoryUtilization: 80}}
}

func kedaScaling() *Autoscaling {
	return &Autoscaling{MinReplicas: 1, MaxReplicas: 4, KEDA: &KEDA{
		ServerAddress: "http://prometheus-operated.monitoring.svc:9090", Query: "sum(registry_http_in_flight_requests)", Threshold: "20"}}
}

// With an autoscaler the Deployment declares no count: `pulumi up` would reset the autoscaler's.
func TestAutoscaledDeploymentLeavesTheCountToTheAutoscaler(t *testing.T) {
	for name, as := range map[string]*Autoscaling{"hpa": hpaScaling(), "keda": kedaScaling()} {
		a := args()
		a.Autoscaling = as
		m := runRegistry(t, "registry", a)
		if got := m.Get(t, tDeployment, "registry").Lookup("spec", "replicas"); got != nil {
			t.Errorf("%s: Deployment replicas = %v, want none (the autoscaler's)", name, got)
		}
		pdbs := m.OfType(tPDB)
		if len(pdbs) != 1 || pdbs[0].Lookup("spec", "maxUnavailable") != 1.0 {
			t.Errorf("%s: PDBs %v, want one with maxUnavailable 1 (a drain evicts one pod at a time, whatever the count)", name, pdbs)
		}
	}
}

func TestHPAScalesTheDeploymentOnItsResourceTargets(t *testing.T) {
	a := args()
	a.Autoscaling = hpaScaling()
	m := runRegistry(t, "registry", a)
	if n := len(m.OfType(tScaledObject)); n != 0 {
		t.Errorf("%d ScaledObjects beside the HPA", n)
	}
	hpa := m.Get(t, tHPA, "registry")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"metadata", "namespace"}, "images"},
		{[]any{"spec", "scaleTargetRef"}, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "registry"}},
		{[]any{"spec", "minReplicas"}, 2.0},
		{[]any{"spec", "maxReplicas"}, 5.0},
		{[]any{"spec", "metrics", 0, "resource"}, map[string]any{"name": "cpu", "target": map[string]any{"type": "Utilization", "averageUtilization": 60.0}}},
		{[]any{"spec", "metrics", 1, "resource"}, map[string]any{"name": "memory", "target": map[string]any{"type": "Utilization", "averageUtilization": 80.0}}},
		{[]any{"spec", "behavior", "scaleDown", "stabilizationWindowSeconds"}, 300.0},
		{[]any{"spec", "behavior", "scaleDown", "policies", 0}, map[string]any{"type": "Pods", "value": 1.0, "periodSeconds": 60.0}},
	} {
		if got := hpa.Lookup(c.path...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("HPA %v = %#v, want %#v", c.path, got, c.want)
		}
	}

	a.Autoscaling.Resources.MemoryUtilization = 0
	hpa = runRegistry(t, "registry", a).Get(t, tHPA, "registry")
	if metrics := hpa.Lookup("spec", "metrics").([]any); len(metrics) != 1 {
		t.Errorf("memory target 0: metrics %v, want CPU alone", metrics)
	}
}

func TestKEDAScaledObjectNeedsKEDA(t *testing.T) {
	a := args()
	a.Autoscaling = kedaScaling()
	m := runRegistry(t, "registry", a)
	if n := len(m.OfType(tHPA)); n != 0 {
		t.Errorf("%d HPAs beside the ScaledObject (KEDA makes its own)", n)
	}
	crds := m.OfType(tCRD)
	if len(crds) != 1 || !crds[0].Read {
		t.Fatalf("CRDs %v, want %s read (never installed by the stack)", crds, ScaledObjectCRD)
	}
	so := m.Get(t, tScaledObject, "registry")
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"spec", "scaleTargetRef", "name"}, "registry"},
		{[]any{"spec", "minReplicaCount"}, 1.0},
		{[]any{"spec", "maxReplicaCount"}, 4.0},
		{[]any{"spec", "triggers", 0, "type"}, "prometheus"},
		{[]any{"spec", "triggers", 0, "metadata"}, map[string]any{
			"serverAddress": "http://prometheus-operated.monitoring.svc:9090", "query": "sum(registry_http_in_flight_requests)", "threshold": "20"}},
		{[]any{"spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds"}, 300.0},
	} {
		if got := so.Lookup(c.path...); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ScaledObject %v = %#v, want %#v", c.path, got, c.want)
		}
	}
	if got := AutoscalerName("registry", a.Autoscaling); got != "keda-hpa-registry" {
		t.Errorf("AutoscalerName = %q, want the HPA KEDA makes (keda-hpa-<ScaledObject>)", got)
	}
}

func TestFixedReplicasHaveNoAutoscaler(t *testing.T) {
	m := runRegistry(t, "registry", args())
	if n := len(m.OfType(tHPA)) + len(m.OfType(tScaledObject)); n != 0 {
		t.Errorf("%d autoscalers without autoscaling", n)
	}
}

// The count goes back to the stack after an HPA owned it only with force (an apply conflict on
// spec.replicas otherwise, seen on the sandbox).
func TestDeploymentTakesItsFieldsBackWithForce(t *testing.T) {
	m := runRegistry(t, "registry", args())
	if got := m.Get(t, tDeployment, "registry").String("metadata", "annotations", PatchForceAnnotation); got != "true" {
		t.Errorf("annotation %s = %q, want true", PatchForceAnnotation, got)
	}
}

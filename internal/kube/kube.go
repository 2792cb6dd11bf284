// Package kube holds the Kubernetes conventions every component shares: recommended labels, the
// restricted security context and resource requirements.
package kube

import (
	"crypto/sha256"
	"encoding/hex"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	networkingv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/networking/v1"
	policyv1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/policy/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// PartOf is the app.kubernetes.io/part-of value of every object of the stack.
const PartOf = "registry-stack"

// Labels are the app.kubernetes.io/* labels of one component instance.
func Labels(app, instance, component string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       app,
		"app.kubernetes.io/instance":   instance,
		"app.kubernetes.io/component":  component,
		"app.kubernetes.io/part-of":    PartOf,
		"app.kubernetes.io/managed-by": "pulumi",
	}
}

// Selector is the immutable subset of Labels used in Deployment and Service selectors.
func Selector(app, instance string) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":     app,
		"app.kubernetes.io/instance": instance,
	}
}

// PodSecurityContext runs every container of a pod as the given non-root user with the runtime's
// default seccomp profile. fsGroup makes volumes that support ownership management writable.
func PodSecurityContext(uid int) *corev1.PodSecurityContextArgs {
	return &corev1.PodSecurityContextArgs{
		RunAsNonRoot: pulumi.Bool(true),
		RunAsUser:    pulumi.Int(uid),
		RunAsGroup:   pulumi.Int(uid),
		FsGroup:      pulumi.Int(uid),
		// Chown a volume only when its root has the wrong group, not on every mount: a registry
		// volume holds millions of files and GC restarts every replica twice.
		FsGroupChangePolicy: pulumi.String("OnRootMismatch"),
		SeccompProfile:      &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// ContainerSecurityContext is the restricted Pod Security Standard for one container.
func ContainerSecurityContext() *corev1.SecurityContextArgs {
	return &corev1.SecurityContextArgs{
		AllowPrivilegeEscalation: pulumi.Bool(false),
		ReadOnlyRootFilesystem:   pulumi.Bool(true),
		RunAsNonRoot:             pulumi.Bool(true),
		Capabilities:             &corev1.CapabilitiesArgs{Drop: pulumi.ToStringArray([]string{"ALL"})},
		SeccompProfile:           &corev1.SeccompProfileArgs{Type: pulumi.String("RuntimeDefault")},
	}
}

// Resources builds requests (and a memory limit when memoryLimit is set). CPU is never limited:
// throttling a registry stretches uploads without protecting anything.
func Resources(cpuRequest, memoryRequest, memoryLimit string) *corev1.ResourceRequirementsArgs {
	r := &corev1.ResourceRequirementsArgs{
		Requests: pulumi.StringMap{"cpu": pulumi.String(cpuRequest), "memory": pulumi.String(memoryRequest)},
	}
	if memoryLimit != "" {
		r.Limits = pulumi.StringMap{"memory": pulumi.String(memoryLimit)}
	}
	return r
}

// StringMap converts plain labels to a Pulumi input.
func StringMap(m map[string]string) pulumi.StringMap {
	return pulumi.ToStringMap(m)
}

// Checksum is the SHA-256 of a rendered configuration, for a pod template annotation that rolls the
// pods when the configuration changes. The hash of high-entropy secrets reveals nothing usable, so
// it is unsecreted: previews then show which pods will roll instead of "[secret]".
func Checksum(rendered pulumi.StringOutput) pulumi.StringOutput {
	sum := rendered.ApplyT(func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}).(pulumi.StringOutput)
	return pulumi.Unsecret(sum).(pulumi.StringOutput)
}

// ChecksumAnnotation is the pod template annotation whose change rolls the pods (see Checksum).
const ChecksumAnnotation = "checksum/config"

// StackLabelPrefix prefixes the labels the stack's own scripts put on pods (GC's read-only mode
// label): a user's value would be overwritten, then deleted when GC restores writes.
const StackLabelPrefix = "registry-stack.io/"

// PortOnlyPolicy is a NetworkPolicy spec that admits traffic to the selected pods on one TCP port
// only; denyEgress also lets them open no connection at all.
func PortOnlyPolicy(selector pulumi.StringMap, port int, denyEgress bool) *networkingv1.NetworkPolicySpecArgs {
	types := []string{"Ingress"}
	if denyEgress {
		types = append(types, "Egress")
	}
	return &networkingv1.NetworkPolicySpecArgs{
		PodSelector: &metav1.LabelSelectorArgs{MatchLabels: selector},
		PolicyTypes: pulumi.ToStringArray(types),
		Ingress: networkingv1.NetworkPolicyIngressRuleArray{&networkingv1.NetworkPolicyIngressRuleArgs{
			Ports: networkingv1.NetworkPolicyPortArray{&networkingv1.NetworkPolicyPortArgs{
				Protocol: pulumi.String("TCP"), Port: pulumi.Int(port),
			}},
		}},
	}
}

// OneAtATime is a PodDisruptionBudget spec that lets one selected pod be evicted at a time: a
// drain never blocks, and never takes two replicas at once.
func OneAtATime(selector pulumi.StringMap) *policyv1.PodDisruptionBudgetSpecArgs {
	return &policyv1.PodDisruptionBudgetSpecArgs{
		MaxUnavailable: pulumi.Int(1),
		Selector:       &metav1.LabelSelectorArgs{MatchLabels: selector},
	}
}

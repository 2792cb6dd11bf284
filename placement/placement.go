// Package placement is what a platform team adds to a workload's pods: where they may run (node
// selector, tolerations, affinity merged with the stack's own), with what priority, extra labels,
// annotations and image pull secrets. Validated, merged per workload and applied to pod specs.
package placement

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/internal/kube"
)

// Spec is what a platform team adds to a workload's pods: where they may run, with what
// priority, extra metadata and pull secrets. Plain values, JSON-tagged like the Kubernetes fields
// they become, so that it decodes from stack config and a pod spec's YAML can be pasted in.
// The zero value and nil add nothing.
type Spec struct {
	NodeSelector      map[string]string `json:"nodeSelector,omitempty"`
	Tolerations       []Toleration      `json:"tolerations,omitempty"`
	Affinity          *Affinity         `json:"affinity,omitempty"`
	PriorityClassName string            `json:"priorityClassName,omitempty"`
	// PodAnnotations and PodLabels go on the pod template, never into a selector.
	PodAnnotations map[string]string `json:"podAnnotations,omitempty"`
	PodLabels      map[string]string `json:"podLabels,omitempty"`
	// ImagePullSecrets name Secrets of the workload's namespace.
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
}

// Toleration is a core/v1 Toleration.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int   `json:"tolerationSeconds,omitempty"`
}

// Affinity is a core/v1 Affinity.
type Affinity struct {
	NodeAffinity    *NodeAffinity `json:"nodeAffinity,omitempty"`
	PodAffinity     *PodAffinity  `json:"podAffinity,omitempty"`
	PodAntiAffinity *PodAffinity  `json:"podAntiAffinity,omitempty"`
}

// NodeAffinity is a core/v1 NodeAffinity.
type NodeAffinity struct {
	Required  *NodeSelector             `json:"requiredDuringSchedulingIgnoredDuringExecution,omitempty"`
	Preferred []PreferredSchedulingTerm `json:"preferredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

// NodeSelector is a core/v1 NodeSelector: a node matches when it matches any of the terms.
type NodeSelector struct {
	NodeSelectorTerms []NodeSelectorTerm `json:"nodeSelectorTerms"`
}

// NodeSelectorTerm is a core/v1 NodeSelectorTerm: a node matches when it meets every requirement.
type NodeSelectorTerm struct {
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions,omitempty"`
	MatchFields      []NodeSelectorRequirement `json:"matchFields,omitempty"`
}

// NodeSelectorRequirement is a core/v1 NodeSelectorRequirement.
type NodeSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// PreferredSchedulingTerm is a core/v1 PreferredSchedulingTerm.
type PreferredSchedulingTerm struct {
	Weight     int              `json:"weight"`
	Preference NodeSelectorTerm `json:"preference"`
}

// PodAffinity is a core/v1 PodAffinity or PodAntiAffinity (the same fields).
type PodAffinity struct {
	Required  []PodAffinityTerm         `json:"requiredDuringSchedulingIgnoredDuringExecution,omitempty"`
	Preferred []WeightedPodAffinityTerm `json:"preferredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

// PodAffinityTerm is a core/v1 PodAffinityTerm; no Namespaces means the pod's own namespace.
type PodAffinityTerm struct {
	LabelSelector *LabelSelector `json:"labelSelector,omitempty"`
	Namespaces    []string       `json:"namespaces,omitempty"`
	TopologyKey   string         `json:"topologyKey"`
}

// WeightedPodAffinityTerm is a core/v1 WeightedPodAffinityTerm.
type WeightedPodAffinityTerm struct {
	Weight          int             `json:"weight"`
	PodAffinityTerm PodAffinityTerm `json:"podAffinityTerm"`
}

// LabelSelector is a meta/v1 LabelSelector.
type LabelSelector struct {
	MatchLabels      map[string]string          `json:"matchLabels,omitempty"`
	MatchExpressions []LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// LabelSelectorRequirement is a meta/v1 LabelSelectorRequirement.
type LabelSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// problems collects validation errors, each naming the field path and the value.
type problems []error

func (e *problems) add(path, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: "+format, append([]any{path}, args...)...))
}

// check adds an error when a k8s.io/apimachinery validation function found something.
func (e *problems) check(path, value string, msgs []string) {
	if len(msgs) > 0 {
		e.add(path, "%q is invalid: %s", value, strings.Join(msgs, "; "))
	}
}

func (e *problems) labels(path string, m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.check(fmt.Sprintf("%s[%q]", path, k), k, validation.IsQualifiedName(k))
		e.check(fmt.Sprintf("%s[%q]", path, k), m[k], validation.IsValidLabelValue(m[k]))
	}
}

// reservedLabel says whose a pod label key is when it is not the user's to set, "" when it is.
func reservedLabel(key string) string {
	switch {
	case strings.HasPrefix(key, "app.kubernetes.io/"):
		return "app.kubernetes.io/* are the stack's own labels, which its Deployments, Services, " +
			"NetworkPolicies and GC select pods by: another value would detach the pods from them"
	case strings.HasPrefix(key, kube.StackLabelPrefix):
		return kube.StackLabelPrefix + "* are set and removed by the stack's GC scripts"
	case key == "pod-template-hash":
		return "the Deployment controller sets it"
	case strings.HasPrefix(key, "batch.kubernetes.io/"), key == "controller-uid", key == "job-name":
		return "the Job controller sets it and selects the Job's pods by it"
	}
	return ""
}

// Validate lists every problem of p, each naming its field path below path (say
// "placement.registry"), the value and what is allowed. nil is valid.
func (p *Spec) Validate(path string) []error {
	if p == nil {
		return nil
	}
	var e problems
	e.labels(path+".nodeSelector", p.NodeSelector)
	for i, t := range p.Tolerations {
		e.toleration(fmt.Sprintf("%s.tolerations[%d]", path, i), t)
	}
	e.affinity(path+".affinity", p.Affinity)
	if p.PriorityClassName != "" {
		e.check(path+".priorityClassName", p.PriorityClassName, validation.IsDNS1123Subdomain(p.PriorityClassName))
	}
	for _, k := range slices.Sorted(maps.Keys(p.PodAnnotations)) {
		at := fmt.Sprintf("%s.podAnnotations[%q]", path, k)
		// As the API server checks annotation keys.
		e.check(at, k, validation.IsQualifiedName(strings.ToLower(k)))
		if k == kube.ChecksumAnnotation {
			e.add(at, "%q is the stack's own annotation (it rolls the pods when their configuration changes)", k)
		}
	}
	e.labels(path+".podLabels", p.PodLabels)
	for _, k := range slices.Sorted(maps.Keys(p.PodLabels)) {
		if why := reservedLabel(k); why != "" {
			e.add(fmt.Sprintf("%s.podLabels[%q]", path, k), "%q cannot be set: %s", k, why)
		}
	}
	for i, s := range p.ImagePullSecrets {
		e.check(fmt.Sprintf("%s.imagePullSecrets[%d]", path, i), s, validation.IsDNS1123Subdomain(s))
	}
	return e
}

// toleration checks what the API server would, so that config errors show up before a deploy.
func (e *problems) toleration(path string, t Toleration) {
	if t.Key != "" {
		e.check(path+".key", t.Key, validation.IsQualifiedName(t.Key))
	}
	switch t.Operator {
	case "", "Equal":
		if t.Key == "" {
			e.add(path+".operator", "%q with an empty key is not allowed: an empty key tolerates every taint, which needs operator Exists", t.Operator)
		}
		e.check(path+".value", t.Value, validation.IsValidLabelValue(t.Value))
	case "Exists":
		if t.Value != "" {
			e.add(path+".value", "%q is not allowed with operator Exists: want an empty value", t.Value)
		}
	default:
		e.add(path+".operator", "%q is not allowed: want Exists, Equal or empty (Equal)", t.Operator)
	}
	switch t.Effect {
	case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
	default:
		e.add(path+".effect", "%q is not allowed: want NoSchedule, PreferNoSchedule, NoExecute or empty (every effect)", t.Effect)
	}
	if s := t.TolerationSeconds; s != nil {
		if t.Effect != "NoExecute" {
			e.add(path+".tolerationSeconds", "%d is not allowed with effect %q: only NoExecute taints evict after a time", *s, t.Effect)
		}
		if *s < 0 {
			e.add(path+".tolerationSeconds", "%d is not allowed: want 0 or more", *s)
		}
	}
}

func (e *problems) affinity(path string, a *Affinity) {
	if a == nil {
		return
	}
	if n := a.NodeAffinity; n != nil {
		at := path + ".nodeAffinity"
		if r := n.Required; r != nil {
			terms := at + ".requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
			if len(r.NodeSelectorTerms) == 0 {
				e.add(terms, "[] is not allowed: want at least one term (no term matches no node)")
			}
			for i, t := range r.NodeSelectorTerms {
				e.nodeTerm(fmt.Sprintf("%s[%d]", terms, i), t)
			}
		}
		for i, p := range n.Preferred {
			pt := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d]", at, i)
			e.weight(pt+".weight", p.Weight)
			e.nodeTerm(pt+".preference", p.Preference)
		}
	}
	e.podAffinity(path+".podAffinity", a.PodAffinity)
	e.podAffinity(path+".podAntiAffinity", a.PodAntiAffinity)
}

func (e *problems) weight(path string, w int) {
	if w < 1 || w > 100 {
		e.add(path, "%d is not allowed: want 1 to 100", w)
	}
}

func (e *problems) nodeTerm(path string, t NodeSelectorTerm) {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		e.add(path, "{} is not allowed: want matchExpressions or matchFields (an empty term matches no node)")
	}
	for i, r := range t.MatchExpressions {
		at := fmt.Sprintf("%s.matchExpressions[%d]", path, i)
		e.check(at+".key", r.Key, validation.IsQualifiedName(r.Key))
		e.requirement(at, r.Operator, r.Values, []string{"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"})
	}
	for i, r := range t.MatchFields {
		at := fmt.Sprintf("%s.matchFields[%d]", path, i)
		if r.Key != "metadata.name" {
			e.add(at+".key", "%q is not allowed: want metadata.name (the only node field Kubernetes selects by)", r.Key)
		}
		if (r.Operator == "In" || r.Operator == "NotIn") && len(r.Values) != 1 {
			e.add(at+".values", "%q is not allowed: want exactly one node name", r.Values)
		}
		e.requirement(at, r.Operator, r.Values, []string{"In", "NotIn"})
	}
}

// requirement checks a selector requirement's operator among allowed, and its values for it.
func (e *problems) requirement(path, operator string, values []string, allowed []string) {
	if !slices.Contains(allowed, operator) {
		e.add(path+".operator", "%q is not allowed: want one of %s", operator, strings.Join(allowed, ", "))
		return
	}
	switch operator {
	case "In", "NotIn":
		if len(values) == 0 {
			e.add(path+".values", "[] is not allowed with operator %s: want at least one value", operator)
		}
		for i, v := range values {
			e.check(fmt.Sprintf("%s.values[%d]", path, i), v, validation.IsValidLabelValue(v))
		}
	case "Exists", "DoesNotExist":
		if len(values) > 0 {
			e.add(path+".values", "%q is not allowed with operator %s: want no values", values, operator)
		}
	case "Gt", "Lt":
		if len(values) != 1 {
			e.add(path+".values", "%q is not allowed with operator %s: want exactly one integer", values, operator)
		} else if _, err := strconv.ParseInt(values[0], 10, 64); err != nil {
			e.add(path+".values[0]", "%q is not allowed with operator %s: want an integer", values[0], operator)
		}
	}
}

func (e *problems) podAffinity(path string, a *PodAffinity) {
	if a == nil {
		return
	}
	for i, t := range a.Required {
		e.podTerm(fmt.Sprintf("%s.requiredDuringSchedulingIgnoredDuringExecution[%d]", path, i), t)
	}
	for i, w := range a.Preferred {
		at := fmt.Sprintf("%s.preferredDuringSchedulingIgnoredDuringExecution[%d]", path, i)
		e.weight(at+".weight", w.Weight)
		e.podTerm(at+".podAffinityTerm", w.PodAffinityTerm)
	}
}

func (e *problems) podTerm(path string, t PodAffinityTerm) {
	if t.TopologyKey == "" {
		e.add(path+".topologyKey", `"" is not allowed: want a node label key, such as kubernetes.io/hostname or topology.kubernetes.io/zone`)
	} else {
		e.check(path+".topologyKey", t.TopologyKey, validation.IsQualifiedName(t.TopologyKey))
	}
	for i, ns := range t.Namespaces {
		e.check(fmt.Sprintf("%s.namespaces[%d]", path, i), ns, validation.IsDNS1123Label(ns))
	}
	s := t.LabelSelector
	if s == nil {
		e.add(path+".labelSelector", "none is not allowed: a term without a selector matches no pod")
		return
	}
	e.labels(path+".labelSelector.matchLabels", s.MatchLabels)
	for i, r := range s.MatchExpressions {
		at := fmt.Sprintf("%s.labelSelector.matchExpressions[%d]", path, i)
		e.check(at+".key", r.Key, validation.IsQualifiedName(r.Key))
		e.requirement(at, r.Operator, r.Values, []string{"In", "NotIn", "Exists", "DoesNotExist"})
	}
}

// Merge is base (a stack-wide default) with override (one workload's) laid over it, field by
// field: maps (nodeSelector, podAnnotations, podLabels) are united, override's value winning for a
// key both have; lists (tolerations, imagePullSecrets) and priorityClassName are override's when
// it sets them (non-empty), base's otherwise; affinity is merged per kind: override's nodeAffinity,
// podAffinity and podAntiAffinity each replace base's of the same kind when set. An override
// cannot remove what base sets, only replace it. Neither argument is modified; the result may
// share nested values with them. nil and nil is nil.
func Merge(base, override *Spec) *Spec {
	if base == nil && override == nil {
		return nil
	}
	var b, o Spec
	if base != nil {
		b = *base
	}
	if override != nil {
		o = *override
	}
	return &Spec{
		NodeSelector:      mergeMaps(b.NodeSelector, o.NodeSelector),
		Tolerations:       slices.Clone(nonEmptyOr(o.Tolerations, b.Tolerations)),
		Affinity:          mergeAffinity(b.Affinity, o.Affinity),
		PriorityClassName: cmp.Or(o.PriorityClassName, b.PriorityClassName),
		PodAnnotations:    mergeMaps(b.PodAnnotations, o.PodAnnotations),
		PodLabels:         mergeMaps(b.PodLabels, o.PodLabels),
		ImagePullSecrets:  slices.Clone(nonEmptyOr(o.ImagePullSecrets, b.ImagePullSecrets)),
	}
}

// nonEmptyOr is a unless it is empty, b then.
func nonEmptyOr[S ~[]E, E any](a, b S) S {
	if len(a) > 0 {
		return a
	}
	return b
}

// mergeMaps is base's keys and override's, override's value winning; nil when both are empty.
func mergeMaps(base, override map[string]string) map[string]string {
	if len(base) == 0 && len(override) == 0 {
		return nil
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, override)
	return out
}

func mergeAffinity(base, override *Affinity) *Affinity {
	if base == nil {
		return override
	}
	if override == nil {
		return base
	}
	out := *base
	if override.NodeAffinity != nil {
		out.NodeAffinity = override.NodeAffinity
	}
	if override.PodAffinity != nil {
		out.PodAffinity = override.PodAffinity
	}
	if override.PodAntiAffinity != nil {
		out.PodAntiAffinity = override.PodAntiAffinity
	}
	return &out
}

// addAffinity is the stack's own rules (own) with a user's added: a pod must satisfy both. Pod
// (anti-)affinity terms are ANDed by Kubernetes, so required terms are appended to required ones;
// preferred terms of every kind add up, so they are appended too. Required node selector terms are
// ORed, so appending would let a node that meets only the user's term pass: each of own's terms
// is combined with each of the user's instead (their requirements ANDed).
func addAffinity(own, user *Affinity) *Affinity {
	if own == nil {
		return user
	}
	if user == nil {
		return own
	}
	return &Affinity{
		NodeAffinity:    addNodeAffinity(own.NodeAffinity, user.NodeAffinity),
		PodAffinity:     addPodAffinity(own.PodAffinity, user.PodAffinity),
		PodAntiAffinity: addPodAffinity(own.PodAntiAffinity, user.PodAntiAffinity),
	}
}

func addPodAffinity(own, user *PodAffinity) *PodAffinity {
	if own == nil {
		return user
	}
	if user == nil {
		return own
	}
	return &PodAffinity{
		Required:  slices.Concat(own.Required, user.Required),
		Preferred: slices.Concat(own.Preferred, user.Preferred),
	}
}

func addNodeAffinity(own, user *NodeAffinity) *NodeAffinity {
	if own == nil {
		return user
	}
	if user == nil {
		return own
	}
	out := &NodeAffinity{Required: own.Required, Preferred: slices.Concat(own.Preferred, user.Preferred)}
	if user.Required != nil {
		out.Required = user.Required
		if own.Required != nil {
			out.Required = &NodeSelector{}
			for _, o := range own.Required.NodeSelectorTerms {
				for _, u := range user.Required.NodeSelectorTerms {
					out.Required.NodeSelectorTerms = append(out.Required.NodeSelectorTerms, NodeSelectorTerm{
						MatchExpressions: slices.Concat(o.MatchExpressions, u.MatchExpressions),
						MatchFields:      slices.Concat(o.MatchFields, u.MatchFields),
					})
				}
			}
		}
	}
	return out
}

// ApplyPodSpec adds p to a pod spec the stack built, whose own affinity rules are own (nil: none):
// the affinity becomes own's and p's terms together (see addAffinity), converted here once, so
// spec must not carry an affinity itself. p's nodeSelector is added to spec's; a key spec already
// has with another value is an error (the stack's rule would be lost). The stack sets no
// tolerations, priority class or pull secrets of its own: a spec that has one is refused when p
// sets it too, rather than replaced. nil p only converts own.
func ApplyPodSpec(spec *corev1.PodSpecArgs, own *Affinity, p *Spec) error {
	if spec.Affinity != nil {
		return errors.New("placement: the pod spec has an affinity already; it must come as own, so that the placement's terms are added to it")
	}
	if p == nil {
		p = &Spec{}
	}
	if a := addAffinity(own, p.Affinity); a != nil {
		spec.Affinity = a.args()
	}
	nodeSelector, err := addStrings("nodeSelector", spec.NodeSelector, p.NodeSelector)
	if err != nil {
		return err
	}
	spec.NodeSelector = nodeSelector
	if (len(p.Tolerations) > 0 && spec.Tolerations != nil) || (p.PriorityClassName != "" && spec.PriorityClassName != nil) ||
		(len(p.ImagePullSecrets) > 0 && spec.ImagePullSecrets != nil) {
		return errors.New("placement: the pod spec sets tolerations, a priority class or pull secrets itself; the placement's would replace them")
	}
	if len(p.Tolerations) > 0 {
		ts := corev1.TolerationArray{}
		for _, t := range p.Tolerations {
			ts = append(ts, t.args())
		}
		spec.Tolerations = ts
	}
	if p.PriorityClassName != "" {
		spec.PriorityClassName = pulumi.String(p.PriorityClassName)
	}
	if len(p.ImagePullSecrets) > 0 {
		refs := corev1.LocalObjectReferenceArray{}
		for _, s := range p.ImagePullSecrets {
			refs = append(refs, &corev1.LocalObjectReferenceArgs{Name: pulumi.String(s)})
		}
		spec.ImagePullSecrets = refs
	}
	return nil
}

// ApplyPodMetadata adds p's pod labels and annotations to a pod template's metadata, beside the
// stack's (new maps: the stack's are often shared with other objects). A key the stack sets
// itself is an error, never an override. nil p changes nothing.
func ApplyPodMetadata(meta *metav1.ObjectMetaArgs, p *Spec) error {
	if p == nil {
		return nil
	}
	labels, err := addStrings("podLabels", meta.Labels, p.PodLabels)
	if err != nil {
		return err
	}
	annotations, err := addStrings("podAnnotations", meta.Annotations, p.PodAnnotations)
	if err != nil {
		return err
	}
	meta.Labels, meta.Annotations = labels, annotations
	return nil
}

// addStrings is stack's map with extra's keys added. A key both have is allowed only when the
// stack's value is the same plain string: the stack's value must neither be replaced nor win
// silently over the user's.
func addStrings(field string, stack pulumi.StringMapInput, extra map[string]string) (pulumi.StringMapInput, error) {
	if len(extra) == 0 {
		return stack, nil
	}
	out := pulumi.StringMap{}
	if stack != nil {
		own, ok := stack.(pulumi.StringMap)
		if !ok {
			return nil, fmt.Errorf("placement: %s: the stack's %T cannot be merged with the placement's", field, stack)
		}
		maps.Copy(out, own)
	}
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if cur, ok := out[k]; ok {
			if s, plain := cur.(pulumi.String); !plain || string(s) != extra[k] {
				return nil, fmt.Errorf("placement: %s[%q]: the stack sets this key itself; %q would replace its value", field, k, extra[k])
			}
		}
		out[k] = pulumi.String(extra[k])
	}
	return out, nil
}

func (t Toleration) args() *corev1.TolerationArgs {
	out := &corev1.TolerationArgs{Key: optional(t.Key), Operator: optional(t.Operator), Value: optional(t.Value), Effect: optional(t.Effect)}
	if t.TolerationSeconds != nil {
		out.TolerationSeconds = pulumi.Int(*t.TolerationSeconds)
	}
	return out
}

// args converts a to the Pulumi input; empty parts are left out (an unset field, not an empty one).
func (a *Affinity) args() *corev1.AffinityArgs {
	out := &corev1.AffinityArgs{}
	if n := a.NodeAffinity; n != nil {
		na := &corev1.NodeAffinityArgs{}
		if n.Required != nil {
			terms := corev1.NodeSelectorTermArray{}
			for _, t := range n.Required.NodeSelectorTerms {
				terms = append(terms, t.args())
			}
			na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelectorArgs{NodeSelectorTerms: terms}
		}
		if len(n.Preferred) > 0 {
			pref := corev1.PreferredSchedulingTermArray{}
			for _, p := range n.Preferred {
				pref = append(pref, &corev1.PreferredSchedulingTermArgs{Weight: pulumi.Int(p.Weight), Preference: p.Preference.args()})
			}
			na.PreferredDuringSchedulingIgnoredDuringExecution = pref
		}
		out.NodeAffinity = na
	}
	if p := a.PodAffinity; p != nil {
		out.PodAffinity = &corev1.PodAffinityArgs{
			RequiredDuringSchedulingIgnoredDuringExecution:  podTerms(p.Required),
			PreferredDuringSchedulingIgnoredDuringExecution: weightedPodTerms(p.Preferred),
		}
	}
	if p := a.PodAntiAffinity; p != nil {
		out.PodAntiAffinity = &corev1.PodAntiAffinityArgs{
			RequiredDuringSchedulingIgnoredDuringExecution:  podTerms(p.Required),
			PreferredDuringSchedulingIgnoredDuringExecution: weightedPodTerms(p.Preferred),
		}
	}
	return out
}

func (t NodeSelectorTerm) args() *corev1.NodeSelectorTermArgs {
	reqs := func(rs []NodeSelectorRequirement) corev1.NodeSelectorRequirementArrayInput {
		if len(rs) == 0 {
			return nil
		}
		out := corev1.NodeSelectorRequirementArray{}
		for _, r := range rs {
			out = append(out, &corev1.NodeSelectorRequirementArgs{Key: pulumi.String(r.Key), Operator: pulumi.String(r.Operator), Values: stringsInput(r.Values)})
		}
		return out
	}
	return &corev1.NodeSelectorTermArgs{MatchExpressions: reqs(t.MatchExpressions), MatchFields: reqs(t.MatchFields)}
}

// podTerms is nil for no terms: an interface holding an empty array is not an unset field.
func podTerms(terms []PodAffinityTerm) corev1.PodAffinityTermArrayInput {
	if len(terms) == 0 {
		return nil
	}
	out := corev1.PodAffinityTermArray{}
	for _, t := range terms {
		out = append(out, t.args())
	}
	return out
}

func weightedPodTerms(terms []WeightedPodAffinityTerm) corev1.WeightedPodAffinityTermArrayInput {
	if len(terms) == 0 {
		return nil
	}
	out := corev1.WeightedPodAffinityTermArray{}
	for _, t := range terms {
		out = append(out, &corev1.WeightedPodAffinityTermArgs{Weight: pulumi.Int(t.Weight), PodAffinityTerm: t.PodAffinityTerm.args()})
	}
	return out
}

func (t PodAffinityTerm) args() *corev1.PodAffinityTermArgs {
	out := &corev1.PodAffinityTermArgs{TopologyKey: pulumi.String(t.TopologyKey), Namespaces: stringsInput(t.Namespaces)}
	if s := t.LabelSelector; s != nil {
		sel := &metav1.LabelSelectorArgs{}
		if len(s.MatchLabels) > 0 {
			sel.MatchLabels = pulumi.ToStringMap(s.MatchLabels)
		}
		if len(s.MatchExpressions) > 0 {
			exprs := metav1.LabelSelectorRequirementArray{}
			for _, r := range s.MatchExpressions {
				exprs = append(exprs, &metav1.LabelSelectorRequirementArgs{Key: pulumi.String(r.Key), Operator: pulumi.String(r.Operator), Values: stringsInput(r.Values)})
			}
			sel.MatchExpressions = exprs
		}
		out.LabelSelector = sel
	}
	return out
}

// optional is nil for "": the field left out rather than set empty.
func optional(s string) pulumi.StringPtrInput {
	if s == "" {
		return nil
	}
	return pulumi.String(s)
}

// stringsInput is nil for no values (the field left out).
func stringsInput(values []string) pulumi.StringArrayInput {
	if len(values) == 0 {
		return nil
	}
	return pulumi.ToStringArray(values)
}

package monitoring

import (
	"regexp"
	"slices"
	"time"
)

// QueriedExprs are the expressions of the dashboard and the alerts of a stack with every feature
// that adds one (cache, a mirror, an autoscaler, a generated certificate, scheduled GC).
func QueriedExprs() []string {
	in := fullInput()
	var exprs []string
	for _, g := range Rules(in) {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	for _, p := range Panels(DashboardInput{Namespace: in.Namespace, Instances: in.Instances, GCCronJob: in.GCCronJob, Mirrors: true, Claims: in.Claims}) {
		for _, q := range p.Queries {
			exprs = append(exprs, q.Expr)
		}
	}
	return exprs
}

// fullInput is a stack with every feature that adds an alert: a daily GC, and a certificate due
// two hours after the epoch (promtool's rule tests start their clock at 0).
func fullInput() RulesInput {
	gap, warn := 24*time.Hour, time.Unix(2*3600, 0).UTC()
	return RulesInput{
		Namespace: "registry", Instances: []string{"registry", "registry-mirror-hub"}, GCCronJob: "registry-gc",
		ReadOnlyFor: time.Hour, GCMaxInterval: &gap, Cache: true, Autoscaler: "registry", CertWarnAt: &warn,
		Claims: []string{"registry-data", "registry-mirror-hub-data"},
	}
}

var registryMetricRE = regexp.MustCompile(`\bregistry_[a-z_]+\b`)

// RegistryMetricNames are the registry's metric names (registry_*) that exprs query, sorted
// (the mode label, also registry_..., is not one).
func RegistryMetricNames(exprs []string) []string {
	var names []string
	for _, e := range exprs {
		for _, m := range registryMetricRE.FindAllString(e, -1) {
			if m != ModeTargetLabel && !slices.Contains(names, m) {
				names = append(names, m)
			}
		}
	}
	slices.Sort(names)
	return names
}

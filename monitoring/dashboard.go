package monitoring

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/regstack/registry-stack/gc"
)

// DashboardInput is what the dashboard shows.
type DashboardInput struct {
	Namespace string
	// Instances have a metrics Service each, the registry's first.
	Instances []string
	GCCronJob string
	// Mirrors: some instances are pull-through caches (proxy panels).
	Mirrors bool
	// Claims hold the images (RulesInput.Claims): a volume panel when there are any.
	Claims []string
}

// Panel is one dashboard graph: its title, unit and PromQL queries (legend → expression).
type Panel struct {
	Title   string
	Unit    string
	Queries []Query
}

// Query is one series of a panel.
type Query struct {
	Legend string
	Expr   string
}

// RateInterval is Grafana's rate window variable; tests put a fixed window in its place.
const RateInterval = "$__rate_interval"

// Panels are the dashboard's graphs: the numbers people look at first.
func Panels(in DashboardInput) []Panel {
	services := make([]string, len(in.Instances))
	for i, inst := range in.Instances {
		services[i] = MetricsServiceName(inst)
	}
	sel := fmt.Sprintf(`namespace=%q, service=~"$service"`, in.Namespace)
	registry := fmt.Sprintf(`namespace=%q, service=%q`, in.Namespace, services[0])
	rate := func(metric, extra string) string {
		if extra != "" {
			extra = ", " + extra
		}
		return fmt.Sprintf(`rate(%s{%s%s}[%s])`, metric, sel, extra, RateInterval)
	}
	quantile := func(q, metric, by string) string {
		return fmt.Sprintf(`histogram_quantile(%s, sum by (le, %s) (%s))`, q, by, rate(metric, ""))
	}
	gcJobs := fmt.Sprintf(`kube_job_owner{namespace=%q, owner_kind="CronJob", owner_name=%q}`, in.Namespace, in.GCCronJob)
	panels := []Panel{
		{Title: "Requests by method and status", Unit: "reqps", Queries: []Query{
			{"{{method}} {{code}}", fmt.Sprintf(`sum by (method, code) (%s)`, rate("registry_http_requests_total", ""))}}},
		{Title: "Request latency (p95 by route)", Unit: "s", Queries: []Query{
			{"{{handler}}", quantile("0.95", "registry_http_request_duration_seconds_bucket", "handler")}}},
		{Title: "Request latency (p50, p99)", Unit: "s", Queries: []Query{
			{"p50", quantile("0.5", "registry_http_request_duration_seconds_bucket", "namespace")},
			{"p99", quantile("0.99", "registry_http_request_duration_seconds_bucket", "namespace")}}},
		{Title: "Server errors (5xx share)", Unit: "percentunit", Queries: []Query{
			{"{{service}}", fmt.Sprintf(`sum by (service) (%s) / sum by (service) (%s)`, rate("registry_http_requests_total", `code=~"5.."`), rate("registry_http_requests_total", ""))}}},
		{Title: "Bytes in (pushes) and out (pulls)", Unit: "Bps", Queries: []Query{
			{"in", fmt.Sprintf(`sum(%s)`, rate("registry_http_request_size_bytes_sum", ""))},
			{"out", fmt.Sprintf(`sum(%s)`, rate("registry_http_response_size_bytes_sum", ""))}}},
		{Title: "Storage action latency (p95)", Unit: "s", Queries: []Query{
			{"{{driver}} {{action}}", quantile("0.95", "registry_storage_action_seconds_bucket", "driver, action")}}},
		{Title: "Cache hit ratio", Unit: "percentunit", Queries: []Query{
			{"hits", fmt.Sprintf(`sum(%s) / sum(%s)`, rate("registry_storage_cache_hits_total", ""), rate("registry_storage_cache_requests_total", ""))},
			{"errors/s", fmt.Sprintf(`sum(%s)`, rate("registry_storage_cache_errors_total", ""))}}},
		{Title: "In-flight requests (uploads)", Unit: "short", Queries: []Query{
			{"{{handler}}", fmt.Sprintf(`sum by (handler) (registry_http_in_flight_requests{%s})`, sel)}}},
		{Title: "Replicas by mode (GC makes them read-only)", Unit: "short", Queries: []Query{
			{"read-write", fmt.Sprintf(`count(up{%s, %s!=%q} == 1)`, registry, ModeTargetLabel, gc.ReadOnlyMode)},
			{"read-only", fmt.Sprintf(`count(up{%s, %s=%q} == 1)`, registry, ModeTargetLabel, gc.ReadOnlyMode)}}},
		{Title: "GC runs (kube-state-metrics)", Unit: "short", Queries: []Query{
			{"succeeded", fmt.Sprintf(`sum((kube_job_status_succeeded{namespace=%q} > 0) * on (namespace, job_name) group_left () %s)`, in.Namespace, gcJobs)},
			{"failed", fmt.Sprintf(`sum((kube_job_status_failed{namespace=%q} > 0) * on (namespace, job_name) group_left () %s)`, in.Namespace, gcJobs)},
			{"hours since the last success", fmt.Sprintf(`(time() - kube_cronjob_status_last_successful_time{namespace=%q, cronjob=%q}) / 3600`, in.Namespace, in.GCCronJob)}}},
	}
	if len(in.Claims) > 0 {
		claims := claimSelector(in.Namespace, in.Claims)
		panels = append(panels, Panel{Title: "Image volumes: free space", Unit: "bytes", Queries: []Query{
			{"{{persistentvolumeclaim}} free", fmt.Sprintf(`kubelet_volume_stats_available_bytes{%s}`, claims)},
			{"{{persistentvolumeclaim}} capacity", fmt.Sprintf(`kubelet_volume_stats_capacity_bytes{%s}`, claims)}}})
	}
	if in.Mirrors {
		panels = append(panels, Panel{Title: "Mirrors: hits and misses", Unit: "reqps", Queries: []Query{
			{"{{service}} {{type}} hits", fmt.Sprintf(`sum by (service, type) (%s)`, rate("registry_proxy_hits_total", ""))},
			{"{{service}} {{type}} misses", fmt.Sprintf(`sum by (service, type) (%s)`, rate("registry_proxy_misses_total", ""))}}})
	}
	return panels
}

// DashboardJSON renders the Grafana dashboard: a Prometheus data source variable, a service
// variable (the registry and each mirror) and one time series panel per Panel.
func DashboardJSON(in DashboardInput) (string, error) {
	services := make([]string, len(in.Instances))
	for i, inst := range in.Instances {
		services[i] = MetricsServiceName(inst)
	}
	ds := map[string]any{"type": "prometheus", "uid": "${datasource}"}
	var panels []any
	for i, p := range Panels(in) {
		var targets []any
		for j, q := range p.Queries {
			targets = append(targets, map[string]any{
				"datasource": ds, "expr": q.Expr, "legendFormat": q.Legend, "refId": string(rune('A' + j)),
			})
		}
		panels = append(panels, map[string]any{
			"id": i + 1, "type": "timeseries", "title": p.Title, "datasource": ds,
			"gridPos":     map[string]any{"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i / 2) * 8},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": p.Unit}, "overrides": []any{}},
			"targets":     targets,
		})
	}
	options := make([]any, len(services))
	for i, s := range services {
		options[i] = map[string]any{"text": s, "value": s, "selected": i == 0}
	}
	dashboard := map[string]any{
		"uid":           dashboardUID(in.Namespace),
		"title":         "Registry (" + in.Namespace + ")",
		"tags":          []string{"registry-stack"},
		"schemaVersion": 39,
		"editable":      false,
		"refresh":       "30s",
		"time":          map[string]any{"from": "now-6h", "to": "now"},
		"templating": map[string]any{"list": []any{
			map[string]any{"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
			map[string]any{"name": "service", "label": "Instance", "type": "custom", "query": strings.Join(services, ","),
				"multi": true, "includeAll": true, "allValue": strings.Join(services, "|"),
				"current": map[string]any{"text": services[0], "value": []string{services[0]}}, "options": options},
		}},
		"panels": panels,
	}
	out, err := json.MarshalIndent(dashboard, "", "  ")
	if err != nil {
		return "", fmt.Errorf("monitoring: dashboard: %w", err)
	}
	return string(out), nil
}

// dashboardUID is stable per namespace and within Grafana's 40 characters.
func dashboardUID(namespace string) string {
	sum := sha256.Sum256([]byte(namespace))
	return "registry-stack-" + hex.EncodeToString(sum[:8])
}

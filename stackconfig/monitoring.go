package stackconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/gc"
	"github.com/regstack/registry-stack/monitoring"
	"github.com/regstack/registry-stack/registry"
)

// Monitoring and autoscaling defaults and limits.
const (
	DefaultScrapeNamespace = "monitoring"
	// DefaultReadOnlyFor: a GC run on the sandbox-sized registry takes a few minutes (two
	// rollouts and the collector); read-only for longer than this is a stuck GC or a huge store.
	DefaultReadOnlyFor     = time.Hour
	MinReadOnlyFor         = 10 * time.Minute
	DefaultScrapeInterval  = 30 * time.Second
	DefaultMinReplicas     = 2
	DefaultMaxReplicas     = 6
	DefaultCPUUtilization  = 70
	MaxUtilization         = 1000
	DefaultKEDAThreshold   = "20"
	DefaultDashboardLabel  = "grafana_dashboard"
	defaultDashboardValue  = "1"
	defaultScraperLabelKey = "app.kubernetes.io/name"
	defaultScraperLabelVal = "prometheus"
)

// rawMonitoring is the monitoring key as stored by `pulumi config set --path`.
type rawMonitoring struct {
	ScrapeNamespace string             `json:"scrapeNamespace"`
	ScrapePodLabels *map[string]string `json:"scrapePodLabels"`
	ServiceMonitor  *struct {
		Enabled  flexBool          `json:"enabled"`
		Labels   map[string]string `json:"labels"`
		Interval string            `json:"interval"`
	} `json:"serviceMonitor"`
	Alerts *struct {
		Enabled     flexBool          `json:"enabled"`
		Labels      map[string]string `json:"labels"`
		ReadOnlyFor string            `json:"readOnlyFor"`
	} `json:"alerts"`
	Dashboard *struct {
		Enabled   flexBool          `json:"enabled"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"dashboard"`
}

// rawAutoscaling is the autoscaling key as stored by `pulumi config set --path`.
type rawAutoscaling struct {
	MinReplicas       *flexInt `json:"minReplicas"`
	MaxReplicas       *flexInt `json:"maxReplicas"`
	CPUUtilization    *flexInt `json:"cpuUtilization"`
	MemoryUtilization *flexInt `json:"memoryUtilization"`
	KEDA              *struct {
		ServerAddress string `json:"serverAddress"`
		Query         string `json:"query"`
		Threshold     string `json:"threshold"`
	} `json:"keda"`
}

// flexBool and flexInt accept a JSON value or its string form: `pulumi config set --path` stores
// what it is given as a string unless told a type.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	v, err := strconv.ParseBool(strings.Trim(string(data), `"`))
	if err != nil {
		return fmt.Errorf("%s is not true or false", data)
	}
	*b = flexBool(v)
	return nil
}

type flexInt int

func (n *flexInt) UnmarshalJSON(data []byte) error {
	v, err := strconv.Atoi(strings.Trim(string(data), `"`))
	if err != nil {
		return fmt.Errorf("%s is not a whole number", data)
	}
	*n = flexInt(v)
	return nil
}

// object parses an object key into out (nil for an empty value: the feature is off), refusing
// unknown fields; fields names what the key may hold.
func object[T any](field func(*Config) **T, fields string) setter {
	return setter{KindObject, func(c *Config, raw string) error {
		raw = strings.TrimSpace(raw)
		if raw == "" || raw == "null" {
			return nil
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
		dec.DisallowUnknownFields()
		out := new(T)
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("%q is invalid (%v); allowed: an object with %s", raw, err, fields)
		}
		*field(c) = out
		return nil
	}}
}

const (
	monitoringFields  = "scrapeNamespace, scrapePodLabels, serviceMonitor {enabled, labels, interval}, alerts {enabled, labels, readOnlyFor}, dashboard {enabled, namespace, labels}"
	autoscalingFields = "minReplicas, maxReplicas, cpuUtilization, memoryUtilization, keda {serverAddress, query, threshold}"
)

// validateMonitoring checks the monitoring key; each problem names monitoring.<field>.
func (v *validator) validateMonitoring(c *Config) {
	m := c.MonitoringRaw
	if m == nil {
		return
	}
	if m.ScrapeNamespace != "" {
		v.dnsLabel("monitoring.scrapeNamespace", m.ScrapeNamespace)
	}
	if m.ScrapePodLabels != nil {
		v.labels("monitoring.scrapePodLabels", *m.ScrapePodLabels)
	}
	if s := m.ServiceMonitor; s != nil {
		if !s.Enabled && (len(s.Labels) > 0 || s.Interval != "") {
			v.bad("monitoring.serviceMonitor.enabled", "false", "true when serviceMonitor.labels or serviceMonitor.interval is set (they would be ignored)")
		}
		v.labels("monitoring.serviceMonitor.labels", s.Labels)
		if s.Interval != "" {
			if d, err := time.ParseDuration(s.Interval); err != nil || d < 5*time.Second || d > 5*time.Minute || d%time.Second != 0 {
				v.bad("monitoring.serviceMonitor.interval", s.Interval, "whole seconds from 5s to 5m, such as 30s")
			}
		}
	}
	if a := m.Alerts; a != nil {
		if !a.Enabled && (len(a.Labels) > 0 || a.ReadOnlyFor != "") {
			v.bad("monitoring.alerts.enabled", "false", "true when alerts.labels or alerts.readOnlyFor is set (they would be ignored)")
		}
		v.labels("monitoring.alerts.labels", a.Labels)
		if a.ReadOnlyFor != "" {
			if d, err := time.ParseDuration(a.ReadOnlyFor); err != nil || d < MinReadOnlyFor || d > gc.RunDeadline || d%time.Minute != 0 {
				v.bad("monitoring.alerts.readOnlyFor", a.ReadOnlyFor, "whole minutes from 10m to 24h (a GC run is stopped after 24h), above the longest GC run of your store, such as 1h")
			}
		}
	}
	if d := m.Dashboard; d != nil {
		if !d.Enabled && (len(d.Labels) > 0 || d.Namespace != "") {
			v.bad("monitoring.dashboard.enabled", "false", "true when dashboard.labels or dashboard.namespace is set (they would be ignored)")
		}
		if d.Namespace != "" {
			v.dnsLabel("monitoring.dashboard.namespace", d.Namespace)
		}
		v.labels("monitoring.dashboard.labels", d.Labels)
	}
}

// validateAutoscaling checks the autoscaling key; each problem names autoscaling.<field>.
func (v *validator) validateAutoscaling(c *Config) {
	a := c.AutoscalingRaw
	if a == nil {
		return
	}
	// Pulumi passes the declared default of an unset key, so only a changed count shows that
	// replicas was set; the autoscaler owns the count, and a set one would be ignored.
	if strconv.Itoa(c.Replicas) != defaultOf("replicas") {
		v.bad("replicas", strconv.Itoa(c.Replicas), "unset when autoscaling is set: the autoscaler owns the replica count "+
			"(set autoscaling.minReplicas and autoscaling.maxReplicas; `pulumi config rm replicas`)")
	}
	lo, hi := intOr(a.MinReplicas, DefaultMinReplicas), intOr(a.MaxReplicas, DefaultMaxReplicas)
	v.intRange("autoscaling.minReplicas", lo, 1, MaxReplicas)
	v.intRange("autoscaling.maxReplicas", hi, 1, MaxReplicas)
	if hi < lo {
		v.bad("autoscaling.maxReplicas", strconv.Itoa(hi), fmt.Sprintf("at least minReplicas (%d)", lo))
	}
	if k := a.KEDA; k != nil {
		if a.CPUUtilization != nil || a.MemoryUtilization != nil {
			v.bad("autoscaling.keda", "set", "unset when cpuUtilization or memoryUtilization is set: one autoscaler, either the HPA on resources or KEDA on a query")
		}
		if u, err := url.Parse(k.ServerAddress); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			v.bad("autoscaling.keda.serverAddress", k.ServerAddress, "the http(s):// URL of the Prometheus KEDA queries, without credentials, "+
				"such as http://prometheus-operated.monitoring.svc:9090")
		}
		if k.Threshold != "" {
			if f, err := strconv.ParseFloat(k.Threshold, 64); err != nil || f <= 0 {
				v.bad("autoscaling.keda.threshold", k.Threshold, "a positive number: the query's value one replica handles, such as 20")
			}
		}
		return
	}
	cpu, mem := intOr(a.CPUUtilization, DefaultCPUUtilization), intOr(a.MemoryUtilization, 0)
	v.intRange("autoscaling.cpuUtilization", cpu, 0, MaxUtilization)
	v.intRange("autoscaling.memoryUtilization", mem, 0, MaxUtilization)
	if cpu == 0 && mem == 0 {
		v.bad("autoscaling.cpuUtilization", "0", "a target above 0 for cpuUtilization or memoryUtilization (percent of the request), or keda")
	}
}

// labels checks a label map's keys and values.
func (v *validator) labels(key string, labels map[string]string) {
	for k, val := range labels {
		if len(validation.IsQualifiedName(k)) > 0 {
			v.bad(key, k, "label names such as app.kubernetes.io/name or release")
		}
		if len(validation.IsValidLabelValue(val)) > 0 {
			v.bad(key+"."+k, val, "a label value: at most 63 letters, digits, - _ and ., starting and ending with a letter or digit")
		}
	}
}

func intOr(n *flexInt, def int) int {
	if n == nil {
		return def
	}
	return int(*n)
}

func labelsOr(labels map[string]string, key, value string) map[string]string {
	if len(labels) > 0 {
		return labels
	}
	return map[string]string{key: value}
}

// monitoring builds the typed Monitoring from the validated raw key.
func (c *Config) monitoring() *monitoring.Config {
	m := c.MonitoringRaw
	if m == nil {
		return nil
	}
	out := &monitoring.Config{ScrapeNamespace: DefaultScrapeNamespace, ScrapePodLabels: map[string]string{defaultScraperLabelKey: defaultScraperLabelVal}}
	if m.ScrapeNamespace != "" {
		out.ScrapeNamespace = m.ScrapeNamespace
	}
	if m.ScrapePodLabels != nil {
		out.ScrapePodLabels = *m.ScrapePodLabels
	}
	if s := m.ServiceMonitor; s != nil && s.Enabled {
		out.ServiceMonitor = &monitoring.ServiceMonitor{Labels: s.Labels, Interval: DefaultScrapeInterval}
		if s.Interval != "" {
			out.ServiceMonitor.Interval, _ = time.ParseDuration(s.Interval)
		}
	}
	if a := m.Alerts; a != nil && a.Enabled {
		out.Alerts = &monitoring.Alerts{Labels: a.Labels, ReadOnlyFor: DefaultReadOnlyFor}
		if a.ReadOnlyFor != "" {
			out.Alerts.ReadOnlyFor, _ = time.ParseDuration(a.ReadOnlyFor)
		}
		if !c.GCSuspend {
			gap := MaxScheduleGap(c.GCSchedule)
			out.Alerts.GCMaxInterval = &gap
		}
	}
	if d := m.Dashboard; d != nil && d.Enabled {
		// An empty namespace is the stack's.
		out.Dashboard = &monitoring.Dashboard{Namespace: d.Namespace, Labels: labelsOr(d.Labels, DefaultDashboardLabel, defaultDashboardValue)}
	}
	return out
}

// autoscaling builds the typed Autoscaling from the validated raw key.
func (c *Config) autoscaling() *registry.Autoscaling {
	a := c.AutoscalingRaw
	if a == nil {
		return nil
	}
	out := &registry.Autoscaling{MinReplicas: intOr(a.MinReplicas, DefaultMinReplicas), MaxReplicas: intOr(a.MaxReplicas, DefaultMaxReplicas)}
	if k := a.KEDA; k != nil {
		out.KEDA = &registry.KEDA{ServerAddress: k.ServerAddress, Query: k.Query, Threshold: k.Threshold}
		if out.KEDA.Threshold == "" {
			out.KEDA.Threshold = DefaultKEDAThreshold
		}
		// An empty Query is the component's default: it names the registry's metrics Service,
		// which only the component knows (its name derives from the component's).
		return out
	}
	out.Resources = &registry.ResourceTargets{
		CPUUtilization:    intOr(a.CPUUtilization, DefaultCPUUtilization),
		MemoryUtilization: intOr(a.MemoryUtilization, 0),
	}
	return out
}

// MaxScheduleGap is the longest time between two consecutive runs of a valid cron schedule, over
// the year 2027 (a fixed year: the rule, and so the preview, does not change with the date; a
// weekly schedule: 168h; "0 3 1 * *": 31 days).
func MaxScheduleGap(schedule string) time.Duration {
	s, err := cron.ParseStandard(schedule)
	if err != nil {
		return 0
	}
	t := s.Next(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	end := t.AddDate(1, 0, 0)
	var gap time.Duration
	for t.Before(end) {
		next := s.Next(t)
		if next.Sub(t) > gap {
			gap = next.Sub(t)
		}
		t = next
	}
	return gap
}

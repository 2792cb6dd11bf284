package registry

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/storage"
)

// Paths and ports inside the registry pod.
const (
	ConfigDir  = "/etc/distribution"
	ConfigFile = ConfigDir + "/config.yml"
	Port       = 5000
	DebugPort  = 5001
	// DebugPortName names the debug port in the pod (metrics Services target it by name).
	DebugPortName = "debug"
	MetricsPath   = "/metrics"
	// LocalConfigKey is the registry's config Secret's second config (RegistryArgs.LocalConfig):
	// a registry on LocalAddr, the pod's loopback, for GC's retention step (gc.Retention).
	LocalConfigKey = "local.yml"
	LocalAddr      = "127.0.0.1:5000"
)

// ConfigInput is what the rendered config.yml depends on.
type ConfigInput struct {
	LogLevel string
	// Storage supplies the storage driver and its parameters.
	Storage       *storage.Backend
	HTTPSecret    string
	RedisAddr     string
	RedisUsername string
	RedisPassword string
	// RedisDB is the cache's database index: instances that share one Redis must not share keys.
	RedisDB      int
	CacheEnabled bool
	// Proxy makes the instance a pull-through cache of one upstream (nil: a registry of its own images).
	Proxy *ProxyConfig
	// Auth is the auth mode's section; nil serves pulls without credentials (mirrors only).
	Auth auth.Section
	// Local renders the loopback registry of LocalConfigKey: the same storage and cache, served on
	// LocalAddr only, without an account, a debug server, health checks or upload purging (it
	// runs for minutes, beside the registry's own replicas).
	Local bool
}

// ProxyConfig is distribution's proxy section, with the upstream password in clear: the rendered
// file lives in a Secret only. An environment override would be parsed as YAML (a password with
// " #" would be cut), so the credentials go in the file.
type ProxyConfig struct {
	RemoteURL string `yaml:"remoteurl"`
	Username  string `yaml:"username,omitempty"`
	Password  string `yaml:"password,omitempty"`
	// TTL: how long cached content stays after it was last fetched; "0" turns expiry off.
	TTL string `yaml:"ttl"`
}

// The structs below mirror the distribution v3 configuration schema (configuration.Configuration)
// for the parts we set. Unknown keys are silently dropped by the registry, so a test parses the
// rendered file with the registry's own parser and checks every value arrived.

type fileConfig struct {
	Version string        `yaml:"version"`
	Log     logConfig     `yaml:"log"`
	Storage storageConfig `yaml:"storage"`
	Auth    auth.Section  `yaml:"auth,omitempty"`
	HTTP    httpConfig    `yaml:"http"`
	Redis   *redisConfig  `yaml:"redis,omitempty"`
	Proxy   *ProxyConfig  `yaml:"proxy,omitempty"`
	Health  healthConfig  `yaml:"health"`
}

type logConfig struct {
	Level     string            `yaml:"level"`
	Formatter string            `yaml:"formatter"`
	Fields    map[string]string `yaml:"fields,omitempty"`
	AccessLog struct {
		Disabled bool `yaml:"disabled"`
	} `yaml:"accesslog"`
}

// storageConfig is the storage section: one driver's parameters (inlined under the driver's
// name) beside the driver-independent keys.
type storageConfig struct {
	Driver      map[string]map[string]any `yaml:",inline"`
	Delete      map[string]bool           `yaml:"delete"`
	Redirect    *redirectConfig           `yaml:"redirect,omitempty"`
	Cache       map[string]string         `yaml:"cache,omitempty"`
	Maintenance maintenanceConfig         `yaml:"maintenance"`
}

type redirectConfig struct {
	Disable bool `yaml:"disable"`
}

type maintenanceConfig struct {
	UploadPurging uploadPurging `yaml:"uploadpurging"`
}

type uploadPurging struct {
	Enabled  bool   `yaml:"enabled"`
	Age      string `yaml:"age"`
	Interval string `yaml:"interval"`
	DryRun   bool   `yaml:"dryrun"`
}

type httpConfig struct {
	Addr         string              `yaml:"addr"`
	Secret       string              `yaml:"secret"`
	DrainTimeout string              `yaml:"draintimeout"`
	Headers      map[string][]string `yaml:"headers"`
	Debug        debugConfig         `yaml:"debug"`
}

type debugConfig struct {
	Addr       string           `yaml:"addr"`
	Prometheus prometheusConfig `yaml:"prometheus"`
}

type prometheusConfig struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
}

// redisConfig is the v3 schema (go-redis options): addrs is a list; there is no addr and no pool block.
type redisConfig struct {
	Addrs           []string `yaml:"addrs"`
	Username        string   `yaml:"username"`
	Password        string   `yaml:"password"`
	DB              int      `yaml:"db"`
	DialTimeout     string   `yaml:"dialtimeout"`
	ReadTimeout     string   `yaml:"readtimeout"`
	WriteTimeout    string   `yaml:"writetimeout"`
	PoolSize        int      `yaml:"poolsize"`
	MinIdleConns    int      `yaml:"minidleconns"`
	MaxIdleConns    int      `yaml:"maxidleconns"`
	ConnMaxIdleTime string   `yaml:"connmaxidletime"`
	// DisableIdentity: no CLIENT SETINFO on connect, a command the cache's ACL user may not run.
	DisableIdentity bool `yaml:"disableidentity"`
}

type healthConfig struct {
	StorageDriver storageDriverHealth `yaml:"storagedriver"`
}

type storageDriverHealth struct {
	Enabled   bool   `yaml:"enabled"`
	Interval  string `yaml:"interval"`
	Threshold int    `yaml:"threshold"`
}

// RenderConfig renders the registry's whole config.yml.
func RenderConfig(in ConfigInput) (string, error) {
	if in.Storage == nil || in.Storage.Driver == "" {
		return "", fmt.Errorf("render registry config: a storage driver is required")
	}
	cfg := fileConfig{
		Version: "0.1",
		Log: logConfig{
			Level:     in.LogLevel,
			Formatter: "text",
			Fields:    map[string]string{"service": "registry"},
		},
		Storage: storageConfig{
			Driver: map[string]map[string]any{in.Storage.Driver: in.Storage.Parameters},
			// Also what lets a mirror's TTL scheduler remove expired content: it deletes nothing without it.
			Delete: map[string]bool{"enabled": true},
			Maintenance: maintenanceConfig{UploadPurging: uploadPurging{
				// Abandoned uploads are removed after a week; a live upload never lasts that long.
				Enabled: true, Age: "168h", Interval: "24h",
			}},
		},
		HTTP: httpConfig{
			Addr:   fmt.Sprintf(":%d", Port),
			Secret: in.HTTPSecret,
			// In-flight uploads finish before a pod stops (rolling updates, GC's read-only switch).
			DrainTimeout: "25s",
			Headers:      map[string][]string{"X-Content-Type-Options": {"nosniff"}},
			// Metrics and pprof are served without auth: own port, never in the Service or Ingress.
			Debug: debugConfig{
				Addr:       fmt.Sprintf(":%d", DebugPort),
				Prometheus: prometheusConfig{Enabled: true, Path: MetricsPath},
			},
		},
		Health: healthConfig{StorageDriver: storageDriverHealth{Enabled: true, Interval: "10s", Threshold: 3}},
	}
	cfg.Auth = in.Auth
	if in.Auth == nil && in.Proxy == nil {
		return "", fmt.Errorf("render registry config: only a proxy may serve without auth")
	}
	if in.Local {
		if in.Proxy != nil {
			return "", fmt.Errorf("render registry config: a proxy has no loopback registry")
		}
		cfg.Auth = nil
		cfg.HTTP.Addr = LocalAddr
		cfg.HTTP.Debug = debugConfig{}
		cfg.Health.StorageDriver.Enabled = false
		cfg.Storage.Maintenance.UploadPurging = uploadPurging{Enabled: false}
	}
	if in.Proxy != nil {
		if in.Proxy.RemoteURL == "" {
			return "", fmt.Errorf("render registry config: a proxy needs its upstream URL")
		}
		cfg.Proxy = in.Proxy
	}
	if in.Storage.Redirect != nil {
		cfg.Storage.Redirect = &redirectConfig{Disable: !*in.Storage.Redirect}
	}
	if in.CacheEnabled {
		cfg.Storage.Cache = map[string]string{"blobdescriptor": "redis"}
		cfg.Redis = &redisConfig{
			Addrs:           []string{in.RedisAddr},
			Username:        in.RedisUsername,
			Password:        in.RedisPassword,
			DB:              in.RedisDB,
			DisableIdentity: true,
			// Short timeouts: when Redis is down every lookup falls back to storage, and a slow
			// fallback would stall every pull.
			DialTimeout:     "1s",
			ReadTimeout:     "1s",
			WriteTimeout:    "1s",
			PoolSize:        16,
			MinIdleConns:    2,
			MaxIdleConns:    8,
			ConnMaxIdleTime: "300s",
		}
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("render registry config: %w", err)
	}
	return string(out), nil
}

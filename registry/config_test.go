package registry

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	goredis "github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/regstack/registry-stack/auth"
	"github.com/regstack/registry-stack/storage"
)

// fsStorage is the filesystem driver of the default stack.
var fsStorage = storage.FilesystemBackend(nil, &storage.Filesystem{Mode: storage.ModeHostPath, AccessMode: "ReadWriteOnce"})

var cacheInput = ConfigInput{
	LogLevel:      "debug",
	Storage:       fsStorage,
	HTTPSecret:    "shared-http-secret",
	RedisAddr:     "registry-redis:6379",
	RedisUsername: "registry",
	RedisPassword: "redis-pass",
	CacheEnabled:  true,
	Auth:          auth.HtpasswdSection(ConfigDir),
}

// parse renders in and parses it with the registry's own parser (distribution v3.1.2).
func parse(t *testing.T, in ConfigInput) (*configuration.Configuration, string) {
	t.Helper()
	raw, err := RenderConfig(in)
	if err != nil {
		t.Fatalf("RenderConfig: %v", err)
	}
	cfg, err := configuration.Parse(strings.NewReader(raw))
	if err != nil {
		t.Fatalf("the registry rejects the rendered config: %v\n%s", err, raw)
	}
	return cfg, raw
}

// param reads a nested storage/auth parameter; the parser leaves nested maps as map[any]any.
func param(p configuration.Parameters, path ...string) any {
	var v any = map[string]any(p)
	for _, k := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case map[any]any:
			v = m[k]
		default:
			return nil
		}
	}
	return v
}

func TestRenderedConfigValuesReachTheRegistry(t *testing.T) {
	cfg, raw := parse(t, cacheInput)
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"log.level", string(cfg.Log.Level), "debug"},
		{"log.formatter", cfg.Log.Formatter, "text"},
		{"log.fields.service", cfg.Log.Fields["service"], "registry"},
		{"storage type", cfg.Storage.Type(), "filesystem"},
		{"storage.filesystem.rootdirectory", param(cfg.Storage["filesystem"], "rootdirectory"), storage.DataDir},
		{"storage.delete.enabled", param(cfg.Storage["delete"], "enabled"), true},
		{"storage.cache.blobdescriptor", param(cfg.Storage["cache"], "blobdescriptor"), "redis"},
		{"storage.maintenance.uploadpurging.enabled", param(cfg.Storage["maintenance"], "uploadpurging", "enabled"), true},
		{"storage.maintenance.uploadpurging.age", param(cfg.Storage["maintenance"], "uploadpurging", "age"), "168h"},
		{"storage.maintenance.uploadpurging.interval", param(cfg.Storage["maintenance"], "uploadpurging", "interval"), "24h"},
		{"storage.maintenance.uploadpurging.dryrun", param(cfg.Storage["maintenance"], "uploadpurging", "dryrun"), false},
		{"auth type", cfg.Auth.Type(), "htpasswd"},
		{"auth.htpasswd.realm", param(cfg.Auth["htpasswd"], "realm"), "registry"},
		{"auth.htpasswd.path", param(cfg.Auth["htpasswd"], "path"), ConfigDir + "/htpasswd"},
		{"http.addr", cfg.HTTP.Addr, ":5000"},
		{"http.secret", cfg.HTTP.Secret, "shared-http-secret"},
		{"http.draintimeout", cfg.HTTP.DrainTimeout, 25 * time.Second},
		{"http.headers", cfg.HTTP.Headers, http.Header{"X-Content-Type-Options": {"nosniff"}}},
		{"http.debug.addr", cfg.HTTP.Debug.Addr, ":5001"},
		{"http.debug.prometheus.enabled", cfg.HTTP.Debug.Prometheus.Enabled, true},
		{"http.debug.prometheus.path", cfg.HTTP.Debug.Prometheus.Path, MetricsPath},
		{"health.storagedriver.enabled", cfg.Health.StorageDriver.Enabled, true},
		{"health.storagedriver.interval", cfg.Health.StorageDriver.Interval, 10 * time.Second},
		{"health.storagedriver.threshold", cfg.Health.StorageDriver.Threshold, 3},
		{"redis.addrs", cfg.Redis.Options.Addrs, []string{"registry-redis:6379"}},
		{"redis.username", cfg.Redis.Options.Username, "registry"},
		{"redis.password", cfg.Redis.Options.Password, "redis-pass"},
		// No CLIENT SETINFO on connect: the cache's ACL user may not run it.
		{"redis.disableidentity", cfg.Redis.Options.DisableIdentity, true},
		{"redis.db", cfg.Redis.Options.DB, 0},
		{"redis.dialtimeout", cfg.Redis.Options.DialTimeout, time.Second},
		{"redis.readtimeout", cfg.Redis.Options.ReadTimeout, time.Second},
		{"redis.writetimeout", cfg.Redis.Options.WriteTimeout, time.Second},
		{"redis.poolsize", cfg.Redis.Options.PoolSize, 16},
		{"redis.minidleconns", cfg.Redis.Options.MinIdleConns, 2},
		{"redis.maxidleconns", cfg.Redis.Options.MaxIdleConns, 8},
		{"redis.connmaxidletime", cfg.Redis.Options.ConnMaxIdleTime, 300 * time.Second},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v\n%s", c.what, c.got, c.want, raw)
		}
	}
	if cfg.Log.AccessLog.Disabled {
		t.Error("log.accesslog.disabled is true")
	}
	if cfg.Storage["maintenance"]["readonly"] != nil {
		t.Errorf("storage.maintenance.readonly is set in the file; GC switches it per pod: %v", cfg.Storage["maintenance"]["readonly"])
	}
}

func TestLogLevelIsRendered(t *testing.T) {
	for _, level := range []string{"error", "warn", "info", "debug"} {
		in := cacheInput
		in.LogLevel = level
		if cfg, _ := parse(t, in); string(cfg.Log.Level) != level {
			t.Errorf("log.level = %q, want %q", cfg.Log.Level, level)
		}
	}
}

// TestNothingRenderedIsDroppedByTheParser catches keys the registry silently ignores (a misspelt
// key or a v2-era key): every leaf of the rendered file must come back from the parsed configuration.
func TestNothingRenderedIsDroppedByTheParser(t *testing.T) {
	cfg, raw := parse(t, cacheInput)
	var rendered map[string]any
	if err := yaml.Unmarshal([]byte(raw), &rendered); err != nil {
		t.Fatal(err)
	}
	back, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal the parsed configuration: %v", err)
	}
	var parsed map[string]any
	if err := yaml.Unmarshal(back, &parsed); err != nil {
		t.Fatal(err)
	}
	want, got := leaves(rendered, ""), leaves(parsed, "")
	if len(want) < 30 {
		t.Fatalf("only %d leaves rendered; the comparison would prove little: %v", len(want), want)
	}
	for path, w := range want {
		g, ok := got[path]
		if !ok {
			if isZero(w) {
				continue // omitempty on the registry's side
			}
			t.Errorf("%s: rendered %q but the registry's parser dropped it", path, w)
			continue
		}
		if !sameValue(w, g) {
			t.Errorf("%s: rendered %q, the registry reads %q", path, w, g)
		}
	}
}

// leaves flattens a YAML tree to path -> scalar (as text).
func leaves(v any, prefix string) map[string]string {
	out := map[string]string{}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			for p, s := range leaves(e, prefix+"."+strings.ToLower(k)) {
				out[p] = s
			}
		}
	case []any:
		for i, e := range x {
			for p, s := range leaves(e, fmt.Sprintf("%s[%d]", prefix, i)) {
				out[p] = s
			}
		}
	default:
		out[prefix] = fmt.Sprint(x)
	}
	return out
}

func isZero(s string) bool { return s == "false" || s == "0" || s == "" || s == "<nil>" }

func sameValue(a, b string) bool {
	if a == b {
		return true
	}
	da, errA := time.ParseDuration(a)
	db, errB := time.ParseDuration(b)
	return errA == nil && errB == nil && da == db
}

func TestCacheDisabledConfigHasNoRedis(t *testing.T) {
	in := cacheInput
	in.CacheEnabled = false
	in.RedisPassword = "must-not-appear"
	cfg, raw := parse(t, in)
	if len(cfg.Redis.Options.Addrs) != 0 || cfg.Redis.Options.Password != "" {
		t.Errorf("redis configured with the cache disabled: %+v", cfg.Redis.Options)
	}
	if cfg.Storage["cache"] != nil {
		t.Errorf("storage.cache = %v with the cache disabled (blobdescriptor: redis without redis panics)", cfg.Storage["cache"])
	}
	var top map[string]any
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatal(err)
	}
	if _, ok := top["redis"]; ok {
		t.Errorf("rendered file has a redis section:\n%s", raw)
	}
	if strings.Contains(raw, "must-not-appear") {
		t.Error("the Redis password is rendered although the cache is disabled")
	}
	if cfg.HTTP.Secret != "shared-http-secret" || param(cfg.Storage["filesystem"], "rootdirectory") != storage.DataDir {
		t.Errorf("disabling the cache changed unrelated settings:\n%s", raw)
	}
}

// TestV2RedisSchemaIsSilentlyIgnored is a negative control: the v2 schema (addr string, pool
// block) parses without an error in v3 but configures no Redis at all, which is why RenderConfig
// writes the v3 schema (addrs list, flat pool settings).
func TestV2RedisSchemaIsSilentlyIgnored(t *testing.T) {
	const v2 = `version: 0.1
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  cache:
    blobdescriptor: redis
redis:
  addr: registry-redis:6379
  password: redis-pass
  db: 0
  dialtimeout: 1s
  pool:
    maxidle: 16
    maxactive: 64
    idletimeout: 300s
`
	cfg, err := configuration.Parse(strings.NewReader(v2))
	if err != nil {
		t.Fatalf("v2-style config rejected (the control expects it to parse silently): %v", err)
	}
	if len(cfg.Redis.Options.Addrs) != 0 {
		t.Errorf("v2 redis.addr parsed into addrs %v: the control no longer shows the trap", cfg.Redis.Options.Addrs)
	}
	if cfg.Redis.Options.Password != "redis-pass" || cfg.Redis.Options.DialTimeout != time.Second {
		t.Errorf("the control's common keys did not parse (password %q, dialtimeout %v): it would prove nothing",
			cfg.Redis.Options.Password, cfg.Redis.Options.DialTimeout)
	}
	if cfg.Redis.Options.PoolSize != 0 || cfg.Redis.Options.MaxIdleConns != 0 {
		t.Errorf("v2 pool block parsed: poolsize %d maxidleconns %d", cfg.Redis.Options.PoolSize, cfg.Redis.Options.MaxIdleConns)
	}

	// Our rendering uses only the v3 keys.
	_, raw := parse(t, cacheInput)
	var top struct {
		Redis map[string]any `yaml:"redis"`
	}
	if err := yaml.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatal(err)
	}
	for _, v2Key := range []string{"addr", "pool"} {
		if _, ok := top.Redis[v2Key]; ok {
			t.Errorf("rendered redis section has the v2 key %q:\n%s", v2Key, raw)
		}
	}
	if _, ok := top.Redis["addrs"].([]any); !ok {
		t.Errorf("rendered redis.addrs is not a list:\n%s", raw)
	}
}

// TestReadOnlyOverrideMergesWithTheRenderedMaintenance checks the switch GC uses (the env override
// REGISTRY_STORAGE_MAINTENANCE_READONLY='{"enabled":true}', set by gc/scripts/maintenance.sh) on our
// rendered file: it must add readonly without dropping upload purging, in the shape the registry
// reads (handlers/app.go: map[any]any with a bool "enabled").
func TestReadOnlyOverrideMergesWithTheRenderedMaintenance(t *testing.T) {
	t.Setenv("REGISTRY_STORAGE_MAINTENANCE_READONLY", `{"enabled":true}`)
	cfg, _ := parse(t, cacheInput)
	ro, ok := cfg.Storage["maintenance"]["readonly"].(map[any]any)
	if !ok {
		t.Fatalf("storage.maintenance.readonly = %#v, want map[any]any (the registry panics otherwise)", cfg.Storage["maintenance"]["readonly"])
	}
	if enabled, ok := ro["enabled"].(bool); !ok || !enabled {
		t.Errorf("readonly.enabled = %#v, want bool true", ro["enabled"])
	}
	if got := param(cfg.Storage["maintenance"], "uploadpurging", "enabled"); got != true {
		t.Errorf("the override dropped uploadpurging: %v", cfg.Storage["maintenance"])
	}
	if cfg.Storage.Type() != "filesystem" {
		t.Errorf("storage type = %q after the override", cfg.Storage.Type())
	}
}

// registryRedisClient builds the client exactly as distribution v3.1.2 does
// (registry/handlers/app.go configureRedis + createPool).
func registryRedisClient(cfg *configuration.Configuration) goredis.UniversalClient {
	o := cfg.Redis.Options
	opts := goredis.UniversalOptions{
		Addrs:                 o.Addrs,
		ClientName:            o.ClientName,
		DB:                    o.DB,
		Protocol:              o.Protocol,
		Username:              o.Username,
		Password:              o.Password,
		SentinelUsername:      o.SentinelUsername,
		SentinelPassword:      o.SentinelPassword,
		MaxRetries:            o.MaxRetries,
		MinRetryBackoff:       o.MinRetryBackoff,
		MaxRetryBackoff:       o.MaxRetryBackoff,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		PoolFIFO:              o.PoolFIFO,
		PoolSize:              o.PoolSize,
		PoolTimeout:           o.PoolTimeout,
		MinIdleConns:          o.MinIdleConns,
		MaxIdleConns:          o.MaxIdleConns,
		MaxActiveConns:        o.MaxActiveConns,
		ConnMaxIdleTime:       o.ConnMaxIdleTime,
		ConnMaxLifetime:       o.ConnMaxLifetime,
		MaxRedirects:          o.MaxRedirects,
		ReadOnly:              o.ReadOnly,
		RouteByLatency:        o.RouteByLatency,
		RouteRandomly:         o.RouteRandomly,
		MasterName:            o.MasterName,
		DisableIdentity:       o.DisableIdentity,
		IdentitySuffix:        o.IdentitySuffix,
		UnstableResp3:         o.UnstableResp3,
	}
	opts.OnConnect = func(ctx context.Context, cn *goredis.Conn) error { return cn.Ping(ctx).Err() }
	return goredis.NewUniversalClient(&opts)
}

// fakeRedis is a minimal RESP2 server: HELLO is refused (the client falls back to RESP2 + AUTH),
// AUTH succeeds only with password, and PING needs an authenticated connection.
type fakeRedis struct {
	password string
	ln       net.Listener
	wg       sync.WaitGroup

	mu        sync.Mutex
	passwords []string // every password offered by AUTH
	pongs     int      // PINGs answered on an authenticated connection
	other     []string // commands answered with an error
}

func startFakeRedis(t *testing.T, password string) *fakeRedis {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{password: password, ln: ln}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.wg.Wait()
	})
	return f
}

func (f *fakeRedis) serve(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	authed := false
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "HELLO":
			reply = "-ERR unknown command 'HELLO'"
		case "AUTH":
			pw := args[len(args)-1]
			f.mu.Lock()
			f.passwords = append(f.passwords, pw)
			f.mu.Unlock()
			if pw == f.password {
				authed, reply = true, "+OK"
			} else {
				reply = "-WRONGPASS invalid username-password pair or user is disabled."
			}
		case "CLIENT", "SELECT":
			reply = "+OK"
		case "PING":
			if !authed {
				reply = "-NOAUTH Authentication required."
				break
			}
			f.mu.Lock()
			f.pongs++
			f.mu.Unlock()
			reply = "+PONG"
		default:
			f.mu.Lock()
			f.other = append(f.other, strings.Join(args, " "))
			f.mu.Unlock()
			reply = "-ERR unknown command '" + args[0] + "'"
		}
		if _, err := io.WriteString(conn, reply+"\r\n"); err != nil {
			return
		}
	}
}

// readCommand reads one RESP array of bulk strings.
func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not a RESP array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array length %q", line)
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(hdr, "$") {
			return nil, fmt.Errorf("not a bulk string: %q", hdr)
		}
		size, err := strconv.Atoi(strings.TrimSpace(hdr[1:]))
		if err != nil || size < 0 {
			return nil, fmt.Errorf("bad bulk length %q", hdr)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func (f *fakeRedis) seen() (passwords []string, pongs int, other []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.passwords), f.pongs, slices.Clone(f.other)
}

// TestRenderedRedisSectionReallyConfiguresRedis goes from RenderConfig through the registry's parser
// to the go-redis client the registry builds, against a fake Redis that checks the password.
func TestRenderedRedisSectionReallyConfiguresRedis(t *testing.T) {
	for _, c := range []struct {
		name           string
		serverPassword string
		wantPing       bool
	}{
		{"right password", "redis-pass", true},
		{"wrong password", "another-password", false}, // control: the fake really checks it
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := startFakeRedis(t, c.serverPassword)
			in := cacheInput
			in.RedisAddr = srv.ln.Addr().String()
			cfg, raw := parse(t, in)
			if len(cfg.Redis.Options.Addrs) == 0 {
				t.Fatalf("no redis addrs in the parsed config: the registry would log \"redis not configured\"\n%s", raw)
			}
			client := registryRedisClient(cfg)
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			pong, err := client.Ping(ctx).Result()

			passwords, pongs, other := srv.seen()
			if !slices.Contains(passwords, "redis-pass") {
				t.Errorf("the fake Redis never saw the rendered password; AUTH offered %q", passwords)
			}
			if c.wantPing {
				if err != nil || pong != "PONG" {
					t.Fatalf("PING through the registry's client = %q, %v; want PONG", pong, err)
				}
				if pongs == 0 {
					t.Error("the client reported PONG but the fake answered no authenticated PING")
				}
			} else if err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
				t.Errorf("PING with a wrong password = %q, %v; want a WRONGPASS error", pong, err)
			}
			if len(other) != 0 {
				t.Errorf("the client sent commands the fake does not know: %q", other)
			}
		})
	}
}

// Retention's loopback registry (gc.Retention) reaches the same store and cache as the registry,
// on the pod's loopback only, with no account, debug server or upload purging.
func TestLocalConfigIsTheSameStoreOnLoopbackOnly(t *testing.T) {
	own, _ := parse(t, cacheInput)
	in := cacheInput
	in.Local = true
	local, raw := parse(t, in)
	if local.HTTP.Addr != LocalAddr || !strings.HasPrefix(LocalAddr, "127.0.0.1:") {
		t.Errorf("local registry listens on %q, want the loopback %s", local.HTTP.Addr, LocalAddr)
	}
	if len(local.Auth) != 0 || local.HTTP.Debug.Addr != "" {
		t.Errorf("local registry: auth %v, debug %q; want neither", local.Auth, local.HTTP.Debug.Addr)
	}
	if local.Storage.Type() != own.Storage.Type() || fmt.Sprint(local.Storage.Parameters()) != fmt.Sprint(own.Storage.Parameters()) {
		t.Errorf("local storage %v %v, the registry's %v %v", local.Storage.Type(), local.Storage.Parameters(), own.Storage.Type(), own.Storage.Parameters())
	}
	if local.Redis.Options.Addrs[0] != own.Redis.Options.Addrs[0] || local.Redis.Options.Username != own.Redis.Options.Username {
		t.Errorf("local registry's cache %v, the registry's %v: a deleted tag's descriptors must leave the shared cache", local.Redis.Options, own.Redis.Options)
	}
	if p := param(local.Storage["maintenance"], "uploadpurging", "enabled"); p != false {
		t.Errorf("upload purging %v in the local registry, want off:\n%s", p, raw)
	}
	proxy := in
	proxy.Proxy = &ProxyConfig{RemoteURL: "https://registry-1.docker.io", TTL: "168h"}
	if _, err := RenderConfig(proxy); err == nil {
		t.Error("a mirror rendered a loopback registry")
	}
}

// The token section reaches the registry's own parser with every parameter.
func TestTokenAuthSectionReachesTheRegistry(t *testing.T) {
	in := cacheInput
	in.Auth = auth.Section{"token": auth.TokenParams{
		Realm: "https://registry.example.com/auth", Service: "registry.example.com",
		Issuer: "registry-stack/registry", RootCertBundle: ConfigDir + "/" + auth.TokenCAKey,
	}}
	cfg, raw := parse(t, in)
	if cfg.Auth.Type() != "token" {
		t.Fatalf("auth type %q:\n%s", cfg.Auth.Type(), raw)
	}
	for k, want := range map[string]string{"realm": "https://registry.example.com/auth", "service": "registry.example.com",
		"issuer": "registry-stack/registry", "rootcertbundle": "/etc/distribution/token-ca.pem"} {
		if got := param(cfg.Auth["token"], k); got != want {
			t.Errorf("auth.token.%s = %v, want %q", k, got, want)
		}
	}
	if strings.Contains(raw, "htpasswd") {
		t.Errorf("token config mentions htpasswd:\n%s", raw)
	}
}

// The htpasswd section keeps the order every existing stack's config.yml has (realm, then path):
// a reordered file would change the config Secret and roll every registry on upgrade.
func TestHtpasswdSectionKeepsItsOrder(t *testing.T) {
	raw, err := RenderConfig(cacheInput)
	if err != nil {
		t.Fatal(err)
	}
	want := "auth:\n    htpasswd:\n        realm: registry\n        path: /etc/distribution/htpasswd\n"
	if !strings.Contains(raw, want) {
		t.Errorf("config.yml has no %q:\n%s", want, raw)
	}
}

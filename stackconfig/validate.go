package stackconfig

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
	"github.com/robfig/cron/v3"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/regstack/registry-stack/redis"
)

// Limits enforced by Validate.
const (
	MaxReplicas          = 20
	MinCertValidityHours = 24
	MaxCertValidityHours = 10 * 8760
)

var (
	usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	logLevels       = []string{"error", "warn", "info", "debug"}
	serviceTypes    = []string{"ClusterIP", "NodePort", "LoadBalancer"}
	storageModes    = []string{StorageHostPath, StorageDynamic, StorageExisting}
	accessModes     = []string{"ReadWriteOnce", "ReadWriteMany"}
)

// Validate checks every value and reports all problems at once; each line names the key, the value
// and what is allowed.
func (c *Config) Validate() error {
	v := &validator{}

	if c.KubeContext != "" && strings.ContainsAny(c.KubeContext, " \t\n") {
		v.bad("kubeContext", c.KubeContext, "a kubeconfig context name without spaces, or empty for the current context")
	}
	v.dnsLabel("namespace", c.Namespace)
	v.hostname("hostname", c.Hostname)
	for i, n := range c.ExtraDNSNames {
		v.hostname(fmt.Sprintf("extraDnsNames[%d]", i), n)
	}
	for i, ip := range c.ExtraIPAddresses {
		if net.ParseIP(ip) == nil {
			v.bad(fmt.Sprintf("extraIpAddresses[%d]", i), ip, "an IPv4 or IPv6 address")
		}
	}
	v.validateRouting(c)

	v.intRange("replicas", c.Replicas, 1, MaxReplicas)
	v.image("registry.image", c.RegistryImage)
	if major, ok := tagMajor(c.RegistryImage); ok && major != 3 {
		v.bad("registry.image", c.RegistryImage, "distribution v3 (a 3.x tag): the rendered config uses the v3 schema, which v2 rejects")
	}
	if len(c.AccountNames) == 0 {
		v.bad("accounts", "[]", "at least one account: the first is the admin the outputs username and password name")
	}
	seen := map[string]bool{}
	for i, a := range c.AccountNames {
		key := fmt.Sprintf("accounts[%d]", i)
		switch {
		case !usernamePattern.MatchString(a):
			v.bad(key, a, "1-64 characters of letters, digits and . _ @ -, starting with a letter or digit")
		case len(a) > 40:
			// The account's password resource is named registry-password-<account>.
			v.bad(key, a, "at most 40 characters")
		case seen[a]:
			v.bad(key, a, "an account name not used before (every entry must differ)")
		}
		seen[a] = true
	}
	v.oneOf("registry.logLevel", c.LogLevel, logLevels)
	v.oneOf("registry.serviceType", c.ServiceType, serviceTypes)
	v.quantity("registry.cpuRequest", c.RegistryCPURequest)
	memReq := v.quantity("registry.memoryRequest", c.RegistryMemoryRequest)
	memLim := v.quantity("registry.memoryLimit", c.RegistryMemoryLimit)
	if memReq != nil && memLim != nil && memLim.Cmp(*memReq) < 0 {
		v.bad("registry.memoryLimit", c.RegistryMemoryLimit,
			fmt.Sprintf("a quantity at least registry.memoryRequest (%s)", c.RegistryMemoryRequest))
	}

	v.validateStorage(c)
	v.validateMirrors(c)
	v.validateMonitoring(c)
	v.validateAutoscaling(c)
	v.validateRetention(c)
	v.validateAuth(c)
	v.validateClusterPull(c)
	v.validatePlacement(c)
	v.validateRegistryEnv(c)

	v.image("cache.image", c.RedisImage)
	if _, err := redis.MaxMemoryBytes(c.RedisMaxMemory); err != nil {
		v.bad("cache.maxMemory", c.RedisMaxMemory, "a Redis memory size such as 64mb, 512mb or 1gb (units b, kb, mb, gb)")
	}
	v.quantity("cache.cpuRequest", c.RedisCPURequest)
	v.quantity("cache.memoryRequest", c.RedisMemoryRequest)

	if strings.Contains(c.GCSchedule, "TZ") {
		v.bad("gc.schedule", c.GCSchedule, "a 5-field cron schedule without TZ= (Kubernetes rejects time zones in the schedule)")
	} else if _, err := cron.ParseStandard(c.GCSchedule); err != nil {
		v.bad("gc.schedule", c.GCSchedule, "a 5-field cron schedule such as \"0 3 * * 0\" or a macro such as @weekly")
	}
	v.image("gc.kubectlImage", c.GCKubectlImage)

	if len(v.errs) > 0 {
		return joinErrors(v.errs)
	}
	return nil
}

type validator struct{ errs []error }

func (v *validator) bad(key, value, allowed string) {
	v.errs = append(v.errs, fmt.Errorf("config %q: %q is invalid; allowed: %s", key, value, allowed))
}

func (v *validator) oneOf(key, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.bad(key, value, "one of "+strings.Join(allowed, ", "))
	}
}

func (v *validator) intRange(key string, value, lo, hi int) {
	if value < lo || value > hi {
		v.bad(key, strconv.Itoa(value), fmt.Sprintf("a whole number from %d to %d", lo, hi))
	}
}

func (v *validator) dnsLabel(key, value string) {
	if errs := validation.IsDNS1123Label(value); len(errs) > 0 {
		v.bad(key, value, "a DNS-1123 label: lower-case letters, digits and -, at most 63 characters")
	}
}

func (v *validator) dnsSubdomain(key, value string) {
	if errs := validation.IsDNS1123Subdomain(value); len(errs) > 0 {
		v.bad(key, value, "a DNS-1123 name: lower-case letters, digits, - and ., at most 253 characters")
	}
}

// hostname requires a dot: docker and containerd treat the first path element of an image name as a
// registry host only when it contains a dot or a port.
func (v *validator) hostname(key, value string) {
	if errs := validation.IsDNS1123Subdomain(value); len(errs) > 0 || !strings.Contains(value, ".") || net.ParseIP(value) != nil {
		v.bad(key, value, "a lower-case DNS name with at least one dot, such as registry.example.com")
	}
}

func (v *validator) quantity(key, value string) *resource.Quantity {
	q, err := resource.ParseQuantity(value)
	if err != nil || q.Sign() <= 0 {
		v.bad(key, value, "a positive Kubernetes quantity such as 500m, 128Mi or 10Gi")
		return nil
	}
	return &q
}

// image requires a pinned reference: a tag other than latest, or a digest.
func (v *validator) image(key, value string) {
	ref, err := reference.ParseNormalizedNamed(value)
	if err != nil {
		v.bad(key, value, "an image reference such as registry:3.1.2 or ghcr.io/org/app@sha256:<digest>")
		return
	}
	_, digested := ref.(reference.Digested)
	tagged, isTagged := ref.(reference.Tagged)
	if !digested && (!isTagged || tagged.Tag() == "latest") {
		v.bad(key, value, "a pinned image reference: a tag other than latest, or a digest")
	}
}

// tagMajor returns the major version of an image tag that starts with a number (registry:2.8.3 → 2).
func tagMajor(image string) (int, bool) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return 0, false
	}
	tagged, ok := ref.(reference.Tagged)
	if !ok {
		return 0, false
	}
	major, _, _ := strings.Cut(strings.TrimPrefix(tagged.Tag(), "v"), ".")
	n, err := strconv.Atoi(major)
	return n, err == nil
}

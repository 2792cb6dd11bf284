package gc

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	corev1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/core/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/regstack/registry-stack/internal/kube"
	"github.com/regstack/registry-stack/registry"
	"github.com/regstack/registry-stack/storage"
)

// Retention deletes, at the start of every GC run, the tags that no policy keeps; the same run's
// collector then frees what only they referenced. Nothing is deleted unless a policy says so.
//
// Tags are deleted through the registry's own API by regctl (regclient), never in storage: the
// GC pod starts a registry of its own on the pod's loopback (registry.LocalConfigKey: the same
// storage and cache, no account, reachable from nowhere else), so no credential is needed or sent,
// and the registry stays writable meanwhile. regctl deletes a tag, not the manifest it points to
// (for a registry without tag deletion, by pointing the tag at a placeholder first): another tag
// of the same image keeps it.
type Retention struct {
	// DryRun only reports what would be deleted.
	DryRun bool
	// Policies apply in order: the first whose Repositories match a repository decides for all of
	// its tags. Repositories no policy matches are left alone.
	Policies []RetentionPolicy
	// RegctlImage is a pinned regctl image with sh and cp (the -alpine one): the retention step
	// copies its regctl binary into the registry's image, which runs the local registry.
	RegctlImage string
}

// RetentionPolicy keeps, of each matching repository, every tag that one of its rules keeps and
// deletes the others. A tag whose image has no creation time is kept (it cannot be dated).
// Signature and attestation tags (sha256-<digest>.sig, .att, .sbom) follow their image: deleted
// when every tag of it is, kept otherwise.
type RetentionPolicy struct {
	// Repositories are shell patterns of repository names (`*` also matches `/`), e.g. ci/*.
	Repositories []string
	// KeepNewest keeps the N tags whose images were created last (0: none by count).
	KeepNewest int
	// KeepTags keeps tags matching one of these regular expressions (Go syntax, whole tag).
	KeepTags []string
	// KeepYoungerThan keeps tags whose images were created within this long (0: none by age).
	KeepYoungerThan time.Duration
	// DeleteAll allows the policy to delete every tag of a repository; without it a repository
	// where nothing would be kept is left alone and the run is reported failed.
	DeleteAll bool
}

// Problem is one invalid value: its path (e.g. retention.policies[1].keepTags[0]), the value and
// what is allowed.
type Problem struct{ Path, Value, Allowed string }

func (p Problem) Error() string {
	return fmt.Sprintf("%s: %q is invalid; allowed: %s", p.Path, p.Value, p.Allowed)
}

// Problems names each invalid value by its path under path (path.policies[i].field).
func (r *Retention) Problems(path string) []Problem {
	var out []Problem
	bad := func(at, value, allowed string) { out = append(out, Problem{at, value, allowed}) }
	if r.RegctlImage == "" {
		bad(path+".regctlImage", "", "a pinned regctl image with sh and cp, such as ghcr.io/regclient/regctl:v0.11.7-alpine")
	}
	if len(r.Policies) == 0 {
		bad(path+".policies", "[]", "at least one policy (nothing is deleted without one)")
	}
	for i, p := range r.Policies {
		at := fmt.Sprintf("%s.policies[%d]", path, i)
		if len(p.Repositories) == 0 {
			bad(at+".repositories", "[]", "at least one repository pattern, such as ci/*")
		}
		for j, g := range p.Repositories {
			if !repoPattern.MatchString(g) {
				bad(fmt.Sprintf("%s.repositories[%d]", at, j), g, "a repository name pattern of lower-case letters, digits, . _ - / and the wildcards * and ?")
			}
		}
		for j, re := range p.KeepTags {
			if _, err := regexp.Compile("^(?:" + re + ")$"); err != nil || re == "" || strings.ContainsAny(re, "\t\n\r") {
				bad(fmt.Sprintf("%s.keepTags[%d]", at, j), re, "a regular expression (Go syntax, no tab or line break) matched against the whole tag, "+
					"such as v?[0-9]+\\.[0-9]+\\.[0-9]+ or latest")
			}
		}
		if p.KeepNewest < 0 {
			bad(at+".keepNewest", fmt.Sprint(p.KeepNewest), "0 or more")
		}
		if p.KeepYoungerThan < 0 {
			bad(at+".keepYoungerThan", p.KeepYoungerThan.String(), "a positive duration")
		}
		if p.KeepNewest == 0 && len(p.KeepTags) == 0 && p.KeepYoungerThan == 0 && !p.DeleteAll {
			bad(at+".deleteAll", "false", "true when the policy keeps nothing (no keepNewest, keepTags or keepYoungerThan): "+
				"it would delete every tag of the repositories it matches")
		}
	}
	return out
}

// Validate is Problems as errors.
func (r *Retention) Validate(path string) []error {
	var errs []error
	for _, p := range r.Problems(path) {
		errs = append(errs, p)
	}
	return errs
}

// repoPattern: the characters of repository names plus the shell wildcards * and ?.
var repoPattern = regexp.MustCompile(`^[a-z0-9._/*?-]+$`)

// PoliciesFile is the policies as retention.sh reads them: one line per policy
// (policy<TAB>keepNewest<TAB>keepYoungerThan seconds<TAB>deleteAll), followed by its repository
// patterns (repo<TAB>pattern) and tag expressions (keep<TAB>regexp). Validate refuses tabs and
// line breaks in the values.
func PoliciesFile(r *Retention) string {
	var b strings.Builder
	for _, p := range r.Policies {
		fmt.Fprintf(&b, "policy\t%d\t%d\t%t\n", p.KeepNewest, int64(p.KeepYoungerThan/time.Second), p.DeleteAll)
		for _, g := range p.Repositories {
			fmt.Fprintf(&b, "repo\t%s\n", g)
		}
		for _, re := range p.KeepTags {
			fmt.Fprintf(&b, "keep\t%s\n", re)
		}
	}
	return b.String()
}

// Paths of the retention step.
const (
	// PoliciesKey is the policies file in the scripts ConfigMap.
	PoliciesKey = "retention.policies"
	toolsDir    = "/tools"
)

// retentionSteps are the GC pod's retention containers: copyStep takes regctl out of its image (and so
// pulls that before anything else happens); steps take the lease and run retention.sh in the
// registry's image, as the registry's user with its storage, and give the lease back before the
// registry goes read-only (enter takes it afresh); report measures the freed space beside the last
// step.
func (p *podParts) retentionSteps() (copyStep *corev1.ContainerArgs, steps corev1.ContainerArray, report *corev1.ContainerArgs) {
	a, r := p.a, p.a.Retention
	tools := mount("tools", toolsDir, false)
	cp := pull("copy-regctl", r.RegctlImage, a.RegistryUID, "cp", "/usr/local/bin/regctl", toolsDir+"/regctl")
	cp.VolumeMounts = corev1.VolumeMountArray{tools}
	env := corev1.EnvVarArray{
		&corev1.EnvVarArgs{Name: pulumi.String("LOCAL_CONFIG"), Value: pulumi.String(configDir + "/" + registry.LocalConfigKey)},
		&corev1.EnvVarArgs{Name: pulumi.String("LOCAL_ADDR"), Value: pulumi.String(registry.LocalAddr)},
		&corev1.EnvVarArgs{Name: pulumi.String("POLICIES"), Value: pulumi.String(scriptsDir + "/" + PoliciesKey)},
		&corev1.EnvVarArgs{Name: pulumi.String("REGCTL"), Value: pulumi.String(toolsDir + "/regctl")},
		&corev1.EnvVarArgs{Name: pulumi.String("DRY_RUN"), Value: pulumi.String(fmt.Sprint(r.DryRun))},
		&corev1.EnvVarArgs{Name: pulumi.String("STATUS_DIR"), Value: pulumi.String(statusDir)},
		// regctl keeps its registry settings under $HOME; the root filesystem is read-only.
		&corev1.EnvVarArgs{Name: pulumi.String("HOME"), Value: pulumi.String("/tmp")},
		&corev1.EnvVarArgs{Name: pulumi.String("OTEL_TRACES_EXPORTER"), Value: pulumi.String("none")},
		&corev1.EnvVarArgs{Name: pulumi.String("DATA_DIR"), Value: pulumi.String(dataDir(a.Storage))},
	}
	mounts := append(corev1.VolumeMountArray{mount("config", configDir, true), tools}, a.Storage.Mounts...)
	run := p.step("retention", a.RegistryImage, []string{"retention.sh"}, a.RegistryUID,
		append(append(env, a.Storage.Env...), registry.ExtraEnvVars(a.ExtraEnv)...), mounts...)
	// A registry and regctl's listings of every repository.
	run.Resources = kube.Resources("50m", "64Mi", "512Mi")
	// Beside the last step (a second main container): measures the volume once writes are back.
	report = p.step("report-freed", a.RegistryImage, []string{"retention.sh", "report"}, a.RegistryUID, run.Env.(corev1.EnvVarArray), mounts...)
	return cp, corev1.ContainerArray{p.kubectl("take-lease", "retention-kubectl.sh", "lease"), run,
		p.kubectl("release-lease", "retention-kubectl.sh", "release")}, report
}

// dataDir is where a filesystem store is mounted ("" for other drivers: not measured).
func dataDir(b *storage.Backend) string {
	if b.Driver == "filesystem" {
		return storage.DataDir
	}
	return ""
}

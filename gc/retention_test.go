package gc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // also registers "filesystem"
	"github.com/sirupsen/logrus"
)

// regctlBinary is $REGCTL, or regctl built from tools/regctl (the version the stack's default
// regctlImage ships).
func regctlBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("REGCTL"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "regctl")
	cmd := exec.Command("go", "-C", "../tools/regctl", "build", "-o", out, "github.com/regclient/regclient/cmd/regctl")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build regctl: %v\n%s", err, b)
	}
	return out
}

// testRegistry is distribution (the registry the stack runs) in process, on filesystem storage in
// a temporary directory, which its garbage collector can sweep as GC's collector does.
type testRegistry struct {
	t    *testing.T
	url  string
	addr string
	root string
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	root := t.TempDir()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": root}, "delete": configuration.Parameters{"enabled": true}}
	cfg.HTTP.Secret = "test"
	cfg.Catalog.MaxEntries = 1000 // the parser's default
	cfg.Log.AccessLog.Disabled = true
	logrus.SetOutput(io.Discard) // distribution logs every request
	srv := httptest.NewServer(handlers.NewApp(context.Background(), cfg))
	t.Cleanup(srv.Close)
	return &testRegistry{t: t, url: srv.URL, addr: strings.TrimPrefix(srv.URL, "http://"), root: root}
}

// collect runs distribution's garbage collector as collect.sh does (--delete-untagged).
func (r *testRegistry) collect() {
	r.t.Helper()
	ctx := context.Background()
	d := filesystem.New(filesystem.DriverParameters{RootDirectory: r.root, MaxThreads: 100})
	ns, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := storage.MarkAndSweep(ctx, d, ns, storage.GCOpts{RemoveUntagged: true, Quiet: true}); err != nil {
		r.t.Fatalf("garbage-collect: %v", err)
	}
}

// status is the HTTP status of GET repo/manifests/ref.
func (r *testRegistry) status(repo, ref string) int {
	r.t.Helper()
	req, err := http.NewRequest("GET", r.url+"/v2/"+repo+"/manifests/"+ref, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (r *testRegistry) do(method, url, contentType string, body []byte, want int) *http.Response {
	r.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		r.t.Fatalf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, b)
	}
	return resp
}

func (r *testRegistry) blob(repo string, data []byte) string {
	r.t.Helper()
	d := digestOf(data)
	resp := r.do("POST", r.url+"/v2/"+repo+"/blobs/uploads/", "", nil, http.StatusAccepted)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "http") {
		loc = r.url + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r.do("PUT", loc+sep+"digest="+d, "application/octet-stream", data, http.StatusCreated)
	return d
}

func (r *testRegistry) manifest(repo, ref, mediaType string, body []byte) string {
	r.t.Helper()
	r.do("PUT", r.url+"/v2/"+repo+"/manifests/"+ref, mediaType, body, http.StatusCreated)
	return digestOf(body)
}

// image pushes a one-layer image created at created (nil: no creation time) as repo:tag and
// returns its manifest digest; tag "" pushes by digest only. Same arguments, same digest.
func (r *testRegistry) image(repo, tag string, created *time.Time, arch string) (string, []byte) {
	r.t.Helper()
	cfg := map[string]any{"architecture": arch, "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": []string{}}}
	if created != nil {
		cfg["created"] = created.UTC().Format(time.RFC3339)
	}
	rawCfg, _ := json.Marshal(cfg)
	layer := []byte("layer of " + string(rawCfg))
	m := map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": r.blob(repo, rawCfg), "size": len(rawCfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": r.blob(repo, layer), "size": len(layer)}},
	}
	raw, _ := json.Marshal(m)
	ref := tag
	if ref == "" {
		ref = digestOf(raw)
	}
	return r.manifest(repo, ref, "application/vnd.oci.image.manifest.v1+json", raw), raw
}

// index pushes a two-platform index of images created at created as repo:tag; it returns the
// index's digest and its children's.
func (r *testRegistry) index(repo, tag string, created time.Time) (string, []string) {
	r.t.Helper()
	var children []any
	var digests []string
	for _, arch := range []string{"amd64", "arm64"} {
		d, raw := r.image(repo, "", &created, arch)
		digests = append(digests, d)
		children = append(children, map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(raw),
			"platform": map[string]any{"os": "linux", "architecture": arch}})
	}
	raw, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children})
	return r.manifest(repo, tag, "application/vnd.oci.image.index.v1+json", raw), digests
}

// tagAs points repo:tag at the manifest digest already pushed.
func (r *testRegistry) tagAs(repo, tag, digest string) {
	r.t.Helper()
	resp := r.do("GET", r.url+"/v2/"+repo+"/manifests/"+digest, "", nil, http.StatusOK)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r.manifest(repo, tag, resp.Header.Get("Content-Type"), body)
}

func (r *testRegistry) tags(repo string) []string {
	r.t.Helper()
	resp := r.do("GET", r.url+"/v2/"+repo+"/tags/list", "", nil, http.StatusOK)
	defer resp.Body.Close()
	var out struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		r.t.Fatal(err)
	}
	slices.Sort(out.Tags)
	return out.Tags
}

// runRetention runs retention.sh as the GC pod does, against reg in place of the pod's own
// registry (a `registry` on PATH that only waits stands in for `registry serve`).
func runRetention(t *testing.T, reg *testRegistry, regctl string, r *Retention, now time.Time, statusDir string) (status, log string) {
	t.Helper()
	dir := t.TempDir()
	bin, home := filepath.Join(dir, "bin"), filepath.Join(dir, "home")
	for _, d := range []string{bin, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "registry"), []byte("#!/bin/sh\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	policies := filepath.Join(dir, "policies")
	if err := os.WriteFile(policies, []byte(PoliciesFile(r)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "scripts/retention.sh")
	cmd.Env = retentionEnv(reg, regctl, r, now, statusDir, policies, bin, home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("retention.sh exited %v (it must always exit 0):\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(statusDir, "retention"))
	if err != nil {
		t.Fatalf("no status: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(b)), string(out)
}

// retentionEnv is the retention step's environment in the test.
func retentionEnv(reg *testRegistry, regctl string, r *Retention, now time.Time, statusDir, policies, bin, home string) []string {
	return []string{
		"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + home, "STATUS_DIR=" + statusDir, "POLICIES=" + policies,
		"LOCAL_CONFIG=/dev/null", "LOCAL_ADDR=" + reg.addr, "REGCTL=" + regctl, fmt.Sprintf("DRY_RUN=%t", r.DryRun),
		fmt.Sprintf("NOW=%d", now.Unix()),
		"PAGE=2", // five repositories: three pages of the catalog
		"DATA_DIR=" + reg.root,
	}
}

// The policies run against the registry the stack runs (distribution, in process) with images of
// known creation times: the exact tags left are asserted, a dry run first deletes nothing.
func TestRetentionLeavesExactlyTheTagsPoliciesKeep(t *testing.T) {
	regctl := regctlBinary(t)
	reg := newTestRegistry(t)
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := func(n int) *time.Time { d := now.AddDate(0, 0, -n); return &d }

	c1, _ := reg.image("ci/app", "c1", day(10), "amd64")
	c2, _ := reg.image("ci/app", "c2", day(9), "amd64")
	reg.image("ci/app", "c3", day(8), "amd64")
	c4, _ := reg.image("ci/app", "c4", day(7), "amd64")
	reg.image("ci/app", "v1.0.0", day(20), "amd64")
	reg.tagAs("ci/app", "latest", c1) // the same image as c1, which goes: latest keeps it
	reg.image("ci/app", "nodate", nil, "amd64")
	_, goneChildren := reg.index("ci/app", "idx", *day(30))
	_, keptChildren := reg.index("ci/app", "v2.0.0", *day(40)) // kept by name: its children stay
	sig := func(d string) string { return "sha256-" + strings.TrimPrefix(d, "sha256:") + ".sig" }
	for _, subject := range []string{c1, c2, c4} {
		reg.image("ci/app", sig(subject), nil, "amd64") // a signature (no creation time of its own)
	}
	reg.image("ci/other", "old", day(100), "amd64")
	reg.image("tmp/build", "t-old", day(5), "amd64")
	reg.image("tmp/build", "t-new", day(1), "amd64")
	reg.image("guarded", "g1", day(5), "amd64")
	reg.image("untouched", "u1", day(500), "amd64")

	r := &Retention{RegctlImage: "unused", Policies: []RetentionPolicy{
		{Repositories: []string{"ci/*"}, KeepNewest: 2, KeepTags: []string{"latest", `v[0-9]+\.[0-9]+\.[0-9]+`}},
		{Repositories: []string{"tmp/*"}, KeepYoungerThan: 48 * time.Hour},
		{Repositories: []string{"guarded"}, KeepTags: []string{"release-.*"}},
	}}
	if errs := r.Validate("retention"); len(errs) > 0 {
		t.Fatal(errs)
	}
	before := map[string][]string{}
	for _, repo := range []string{"ci/app", "ci/other", "tmp/build", "guarded", "untouched"} {
		before[repo] = reg.tags(repo)
	}

	r.DryRun = true
	status, log := runRetention(t, reg, regctl, r, now, t.TempDir())
	for repo, tags := range before {
		if got := reg.tags(repo); !slices.Equal(got, tags) {
			t.Errorf("dry run changed %s: %v, was %v", repo, got, tags)
		}
	}
	for _, want := range []string{"ci/app:c2: would delete", "ci/app:idx: would delete", "tmp/build:t-old: would delete",
		"summary: dry run, would delete 5 tags"} {
		if !strings.Contains(log, want) {
			t.Errorf("dry run log lacks %q:\n%s", want, log)
		}
	}
	if !strings.Contains(status, "guarded: its policy keeps none of its 1 tags") {
		t.Errorf("dry run status %q: want the refusal of guarded", status)
	}

	r.DryRun = false
	statusDir := t.TempDir()
	status, log = runRetention(t, reg, regctl, r, now, statusDir)
	want := map[string][]string{
		"ci/app":    {"c3", "c4", "latest", "nodate", sig(c1), sig(c4), "v1.0.0", "v2.0.0"},
		"ci/other":  {"old"},
		"tmp/build": {"t-new"},
		"guarded":   {"g1"},
		"untouched": {"u1"},
	}
	for repo, tags := range want {
		slices.Sort(tags)
		if got := reg.tags(repo); !slices.Equal(got, tags) {
			t.Errorf("%s: tags %v, want %v\n%s", repo, got, tags, log)
		}
	}
	t.Logf("retention log:\n%s", log)
	// Then GC, as the same run's collector: what only deleted tags held goes, every image a kept
	// tag reaches stays (c1's under latest, the kept index's children).
	reg.collect()
	for _, d := range append([]string{c1, c4}, keptChildren...) {
		if code := reg.status("ci/app", d); code != http.StatusOK {
			t.Errorf("manifest %s of a kept tag: %d after GC, want 200", d, code)
		}
	}
	for _, d := range append([]string{c2}, goneChildren...) {
		if code := reg.status("ci/app", d); code != http.StatusNotFound {
			t.Errorf("manifest %s only deleted tags held: %d after GC, want 404", d, code)
		}
	}
	// Once the last step says writes are back, report logs what the run freed on the volume.
	if err := os.WriteFile(filepath.Join(statusDir, "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	report := exec.Command("sh", "scripts/retention.sh", "report")
	report.Env = retentionEnv(reg, regctl, r, now, statusDir, "/dev/null", "/nonexistent", t.TempDir())
	out, err := report.CombinedOutput()
	if err != nil || !regexp.MustCompile(`freed: [1-9][0-9]* KiB of blobs on the volume \([0-9]+ KiB before retention, [0-9]+ KiB after GC`).Match(out) {
		t.Errorf("retention.sh report: %v\n%s", err, out)
	}
	t.Logf("report: %s", out)
	if !strings.Contains(log, "summary: deleted 5 tags") || !strings.HasPrefix(status, "guarded: its policy keeps none") {
		t.Errorf("status %q, log:\n%s", status, log)
	}
}

// A retention.sh that cannot run its regctl still exits 0 and records the failure,
// so GC runs and the Job reports it.
func TestRetentionFailureNeverBlocksGC(t *testing.T) {
	reg := newTestRegistry(t)
	statusDir := t.TempDir()
	r := &Retention{RegctlImage: "unused", Policies: []RetentionPolicy{{Repositories: []string{"*"}, KeepNewest: 1}}}
	status, log := runRetention(t, reg, "/nonexistent/regctl", r, time.Now(), statusDir)
	if status == "0" || status == "" {
		t.Errorf("status %q without regctl, want a failure\n%s", status, log)
	}
}

//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// stepRetention pushes images with known creation times into three repositories, turns retention
// on as a dry run (the GC run reports and deletes nothing), then for real: the GC run, with pushes
// going on, leaves exactly the tags the policies keep, frees the blobs only deleted tags held (bytes
// on the volume before and after), and every kept image and acknowledged push pulls byte for byte.
// Retention stays on for the steps that follow.
func (f *fixture) stepRetention(t *testing.T) {
	need(t, f.Client != nil, "deployment")
	ctx := context.Background()
	app, tmp, other := f.repo("ret/app"), f.repo("ret/tmp"), f.repo("ret/other")
	now := time.Now()
	day := func(n int) time.Time { return now.AddDate(0, 0, -n) }
	const layer = 512 << 10
	images := map[string]*kit.Image{}
	push := func(repo, tag string, created time.Time) {
		im, err := kit.RandomImageAt(repo, tag, 1, layer, created)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Client.PushImage(ctx, im); err != nil {
			t.Fatal(err)
		}
		images[repo+":"+tag] = im
	}
	push(app, "c1", day(10))
	push(app, "c2", day(9))
	push(app, "c3", day(8))
	push(app, "c4", day(7))
	push(app, "v1.0.0", day(20))
	latest := *images[app+":c1"] // the same manifest as c1, which goes: latest keeps its image
	latest.Tag = "latest"
	if _, err := f.Client.PushImage(ctx, &latest); err != nil {
		t.Fatal(err)
	}
	images[app+":latest"] = &latest
	push(tmp, "t-old", day(5))
	push(tmp, "t-new", day(1))
	push(other, "o1", day(400))

	policies := []map[string]any{
		{"repositories": []string{app}, "keepNewest": 2, "keepTags": []string{"latest", `v[0-9]+\.[0-9]+\.[0-9]+`}},
		{"repositories": []string{f.repo("ret/tmp*")}, "keepYoungerThan": "48h"},
	}
	setRetention := func(dryRun bool) {
		raw, err := json.Marshal(map[string]any{"dryRun": dryRun, "policies": policies})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Pulumi.SetConfig(ctx, map[string]string{"retention": string(raw)}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.TimedUp(ctx, fmt.Sprintf("pulumi up (retention, dryRun %t)", dryRun), "up-retention-"+strconv.FormatBool(dryRun)); err != nil {
			t.Fatal(err)
		}
	}
	tags := func() map[string][]string {
		out := map[string][]string{}
		for _, repo := range []string{app, tmp, other} {
			got, err := f.Client.Tags(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			out[repo] = got
		}
		return out
	}
	before := tags()

	setRetention(true)
	res, err := f.runGC(ctx, t, "retention-dry")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{app + ":c2: would delete", app + ":c1: would delete", tmp + ":t-old: would delete", "summary: dry run, would delete 3 tags"} {
		if !strings.Contains(res.Logs, want) {
			t.Errorf("dry run log lacks %q", want)
		}
	}
	if after := tags(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the dry run changed tags: %v, was %v", after, before)
	}
	f.Report.Fact("retention dry run: %s", lineWith(res.Logs, "summary: dry run"))

	setRetention(false)
	du := func(paths ...string) int64 {
		out, err := f.storeExec(ctx, "du -ck "+strings.Join(paths, " ")+" | tail -n 1 | cut -f1")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatalf("du: %q", out)
		}
		return n << 10
	}
	// What only the deleted tags held: their images' blobs and manifests.
	doomed := []*kit.Image{images[app+":c2"], images[tmp+":t-old"]}
	var doomedFiles []string
	for _, im := range doomed {
		for _, b := range append(im.Blobs(), kit.Blob{Digest: im.Digest}) {
			doomedFiles = append(doomedFiles, blobDataPath(b.Hex()))
		}
	}
	doomedBytes := du(doomedFiles...)
	volumeBefore := du("$ROOT/docker/registry/v2/blobs")
	pushes := startPushLoop(ctx, f.Client, f.repo("during-retention"), 128<<10, time.Second)
	defer pushes.stop()
	res, err = f.runGC(ctx, t, "retention")
	pushStats := pushes.stop()
	if err != nil {
		t.Fatal(err)
	}
	volumeAfter := du("$ROOT/docker/registry/v2/blobs")
	want := map[string][]string{app: {"c3", "c4", "latest", "v1.0.0"}, tmp: {"t-new"}, other: {"o1"}}
	got := tags()
	for repo, w := range want {
		if !slices.Equal(got[repo], w) {
			t.Errorf("%s: tags %v, want %v", repo, got[repo], w)
		}
	}
	f.Report.Fact("retention: tags left %v (were %v); %s", got, before, lineWith(res.Logs, "summary: deleted"))
	var deleted []kit.Blob
	for _, im := range doomed {
		deleted = append(deleted, append(im.Blobs(), kit.Blob{Digest: im.Digest})...)
	}
	var kept []kit.Blob
	for _, ref := range []string{"c1", "c3", "c4", "v1.0.0"} {
		im := images[app+":"+ref]
		kept = append(kept, append(im.Blobs(), kit.Blob{Digest: im.Digest})...)
	}
	onDisk, err := f.blobsOnDisk(ctx, append(append([]kit.Blob{}, deleted...), kept...))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range deleted {
		if onDisk[b.Digest] {
			t.Errorf("blob %s of a deleted tag is still stored after GC", b.Digest)
		}
	}
	for _, b := range kept {
		if !onDisk[b.Digest] {
			t.Errorf("blob %s of a kept image is gone", b.Digest)
		}
	}
	pushed := 0
	for _, im := range pushStats.Acked {
		pushed += im.Size()
	}
	msg := fmt.Sprintf("retention + GC freed the %d files only the deleted tags held, %s on the volume (blobs: %s before, %s after, "+
		"with %d images (%s) pushed during the run)", len(doomedFiles), kit.MiB(int(doomedBytes)), kit.MiB(int(volumeBefore)), kit.MiB(int(volumeAfter)),
		len(pushStats.Acked), kit.MiB(pushed))
	t.Log(msg)
	f.Report.Fact("%s", msg)
	if doomedBytes < int64(2*layer) {
		t.Errorf("%s: the deleted images held less than their two layers", msg)
	}
	if len(pushStats.Acked) == 0 {
		t.Errorf("no push was acknowledged during the retention run: its race with pushes was not exercised")
	}
	pulls := []*kit.Image{images[app+":c3"], images[app+":c4"], images[app+":v1.0.0"], images[app+":latest"], images[tmp+":t-new"], images[other+":o1"]}
	pulls = append(pulls, pushStats.Acked...)
	for _, im := range pulls {
		if _, err := f.Client.PullImage(ctx, im.Tag, im); err != nil {
			t.Errorf("kept image %s: %v", im.Ref(), err)
		}
	}
	f.survivors = append(f.survivors, pulls...)
	for _, want := range []string{"summary: retention=0; collector: ", "eligible for deletion", "retention: freed: "} {
		if !strings.Contains(res.Logs, want) && !(want == "retention: freed: " && f.onS3) {
			t.Errorf("the GC Job's log lacks %q", want)
		}
	}
	f.Report.Fact("GC Job's own account: %s; %s", lineWith(res.Logs, "summary: retention="), lineWith(res.Logs, "freed:"))
	// Retention changed nothing the stack owns: a refreshing preview is clean.
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-refresh-retention", "preview", "--refresh", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("preview --refresh after retention + GC: %v", err)
	}
}

// lineWith is the first line of logs containing s.
func lineWith(logs, s string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return "(no line with " + s + ")"
}

// stepClaimGrowthRefused raises storage.filesystem.pvcSize on the running stack. The sandbox's
// local-path class cannot expand a volume: the update is refused with Kubernetes' reason, the claim
// keeps its size and its images, and with pvcSize back one `pulumi up` leaves no change. (Where the
// class allows expansion the claim grows in place: storage's TestClaimGrowsInPlaceWhereTheClassAllowsIt.)
func (f *fixture) stepClaimGrowthRefused(t *testing.T) {
	need(t, f.Client != nil && f.imgKeep != nil && f.Out.ClaimName != "", "deployment with an image on a claim")
	ctx := context.Background()
	size := func() string {
		out, err := f.Kube.NS(ctx, "get", "pvc", f.Out.ClaimName, "-o", "jsonpath={.spec.resources.requests.storage}")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	before := size()
	old, err := f.Pulumi.Run(ctx, time.Minute, true, "config", "get", "--path", "storage.filesystem.pvcSize")
	if err != nil {
		t.Fatalf("pvcSize: %v", err)
	}
	old = strings.TrimSpace(old)
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"storage.filesystem.pvcSize": "3Gi"}); err != nil {
		t.Fatal(err)
	}
	_, upErr := f.TimedUp(ctx, "pulumi up (pvcSize raised, class cannot expand)", "up-pvc-grow")
	if err := f.Pulumi.SetConfig(ctx, map[string]string{"storage.filesystem.pvcSize": old}); err != nil {
		t.Fatal(err)
	}
	const reason = "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
	if upErr == nil || !strings.Contains(upErr.Error(), reason) {
		t.Fatalf("pvcSize %s → 3Gi on a class without allowVolumeExpansion: %v; want the API server's refusal (%q)", old, upErr, reason)
	}
	f.Report.Fact("pvcSize %s → 3Gi refused on the sandbox's local-path class: %q", old, reason)
	if after := size(); after != before {
		t.Errorf("claim size %s after the refused update, was %s", after, before)
	}
	if _, err := f.Client.PullImage(ctx, f.imgKeep.Tag, f.imgKeep); err != nil {
		t.Errorf("image after the refused update: %v", err)
	}
	// The refused update leaves the new size in the state as the claim's last inputs: one more
	// `pulumi up` with pvcSize back records the size the claim has (a no-op on the cluster).
	if _, err := f.TimedUp(ctx, "pulumi up (pvcSize back)", "up-pvc-back"); err != nil {
		t.Fatalf("pulumi up with pvcSize back to %s: %v", old, err)
	}
	if after := size(); after != before {
		t.Errorf("claim size %s after pvcSize went back, was %s", after, before)
	}
	if _, err := f.Pulumi.RunLong(ctx, kit.PreviewTimeout, "preview-after-pvc", "preview", "--expect-no-changes", "--diff"); err != nil {
		t.Errorf("with pvcSize back to %s the stack still has changes: %v", old, err)
	}
}

//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// blobDataPath is where a blob's data is below the storage root ($ROOT of storeExec): the
// filesystem driver's layout, which the S3 fixture (a posix-backed store) keeps as files too.
func blobDataPath(digestHex string) string {
	return "$ROOT/docker/registry/v2/blobs/sha256/" + digestHex[:2] + "/" + digestHex + "/data"
}

// storeExec runs a shell script where the registry's storage is visible as files, with $ROOT set
// to its root: the registry pod's volume, or the S3 fixture's bucket directory (prefix included).
func (f *fixture) storeExec(ctx context.Context, script string) (string, error) {
	if f.onS3 {
		return f.s3.Exec(ctx, f.Kube, script)
	}
	return f.Kube.Exec(ctx, "deploy/"+f.Out.DeploymentName, "registry", "ROOT=/var/lib/registry\n"+script)
}

// blobsOnDisk checks with one `kubectl exec` which of the blobs have a data file in the storage
// the registry pods share.
func (f *fixture) blobsOnDisk(ctx context.Context, blobs []kit.Blob) (map[string]bool, error) {
	var script strings.Builder
	for _, b := range blobs {
		fmt.Fprintf(&script, "if test -e %s; then echo present %s; else echo absent %s; fi\n", blobDataPath(b.Hex()), b.Digest, b.Digest)
	}
	out, err := f.storeExec(ctx, script.String())
	if err != nil {
		return nil, err
	}
	present := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		state, digest, ok := strings.Cut(strings.TrimSpace(l), " ")
		if ok {
			present[digest] = state == "present"
		}
	}
	for _, b := range blobs {
		if _, ok := present[b.Digest]; !ok {
			return nil, fmt.Errorf("no answer for blob %s in %q", b.Digest, out)
		}
	}
	return present, nil
}

// createJobFromCronJob creates Job job from the GC CronJob's own template after edit changed its
// pod spec (the tests' stand-ins for a probe or a long collector; everything else is the product's).
func (f *fixture) createJobFromCronJob(ctx context.Context, job string, edit func(spec map[string]any) error) error {
	out, err := f.Kube.NS(ctx, "create", "job", job, "--from", "cronjob/"+f.Out.GCCronJobName, "--dry-run=client", "-o", "json")
	if err != nil {
		return err
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(out), &obj); err != nil {
		return fmt.Errorf("decode job from cronjob: %w", err)
	}
	spec, ok := dig(obj, "spec", "template", "spec")
	if !ok {
		return fmt.Errorf("job from cronjob has no spec.template.spec")
	}
	if err := edit(spec); err != nil {
		return err
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	path := filepath.Join(f.Settings.WorkDir, job+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	_, err = f.Kube.NS(ctx, "create", "-f", path)
	return err
}

// runGC creates a Job from the GC CronJob, waits for it and for the registry to be back to its
// normal replica count.
func (f *fixture) runGC(ctx context.Context, t *testing.T, label string) (*kit.JobResult, error) {
	suffix, err := kit.RandomSuffix()
	if err != nil {
		return nil, err
	}
	job := "e2e-" + label + "-" + suffix
	res, err := f.Kube.RunJobFromCronJob(ctx, f.Out.GCCronJobName, job, kit.GCJobTimeout)
	if err != nil {
		return res, err
	}
	t.Logf("job %s succeeded in %s; last log lines:\n%s", job, res.Duration.Round(time.Second), kit.Tail(res.Logs, 8))
	return res, nil
}

// stepGCUnderLoad deletes one image, runs GC while pulls of another image and pushes of fresh
// images keep going, then checks: the deleted image's blobs are gone from storage, the cache was
// flushed, the kept image and every acknowledged push pull correctly, and pushing the deleted image
// again yields a pullable image (no stale "blob exists" answers from the cache).
func (f *fixture) stepGCUnderLoad(t *testing.T) {
	need(t, f.imgKeep != nil && f.imgDrop != nil, "pushed images")
	ctx := context.Background()
	keep, drop := f.imgKeep, f.imgDrop

	if err := f.Client.DeleteManifest(ctx, drop.Repo, drop.Digest); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{drop.Tag, drop.Digest} {
		code, err := f.Client.ManifestStatus(ctx, drop.Repo, ref)
		if err != nil {
			t.Fatal(err)
		}
		if code != 404 {
			t.Fatalf("%s:%s after delete: HTTP %d, want 404", drop.Repo, ref, code)
		}
	}
	// Before GC the deleted image's blobs are still on disk: this also proves the path layout the
	// after-GC check relies on.
	all := append(keep.Blobs(), drop.Blobs()...)
	onDisk, err := f.blobsOnDisk(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if !onDisk[b.Digest] {
			t.Fatalf("blob %s is not at %s before GC: storage layout differs from the contract", b.Digest, blobDataPath(b.Hex()))
		}
	}

	// With a mirror deployed, it pulls from the registry throughout GC too.
	var mirrorPulls *loop
	if f.mirror != nil {
		if mirrorPulls, err = f.startMirrorGCLoad(ctx); err != nil {
			t.Fatal(err)
		}
		defer mirrorPulls.stop()
	}
	pulls := startPullLoop(ctx, f.Client, keep, 100*time.Millisecond)
	pushes := startPushLoop(ctx, f.Client, f.repo("during-gc"), 128<<10, time.Second)
	// Stopping twice is harmless; the defers only matter when the step fails early.
	defer pulls.stop()
	defer pushes.stop()
	// Make sure both loops are running before GC starts, so the counts cover the whole GC.
	if err := kit.Poll(ctx, time.Minute, 200*time.Millisecond, func() (bool, error) {
		p, q := pulls.stats.snapshot(), pushes.stats.snapshot()
		return p.Attempts > 0 && q.Attempts > 0, nil
	}); err != nil {
		t.Fatalf("load loops did not start: %v", err)
	}
	var pullStats, pushStats, mirrorStats loadCounts
	var gcRes *kit.JobResult
	gcErr := f.Timed("GC job (under load)", func() (string, error) {
		var err error
		gcRes, err = f.runGC(ctx, t, "gc")
		pullStats, pushStats = pulls.stop(), pushes.stop()
		if mirrorPulls != nil {
			mirrorStats = mirrorPulls.stop()
		}
		return pullStats.summary("pulls") + "; " + pushStats.summary("pushes"), err
	})
	if mirrorPulls != nil {
		f.Report.Fact("during GC through the mirror %s", mirrorStats.summary("pulls"))
		t.Logf("during GC through the mirror %s", mirrorStats.summary("pulls"))
		for _, l := range mirrorStats.Failures {
			t.Logf("  mirror failure: %s", l)
		}
		if mirrorStats.Failed > 0 || mirrorStats.OK+mirrorStats.OKAfterRetry == 0 {
			t.Errorf("pulls through the mirror during GC: %s", mirrorStats.summary("pulls"))
		}
	}
	f.Report.Fact("during GC %s", pullStats.summary("pulls"))
	f.Report.Fact("during GC %s; %d acknowledged", pushStats.summary("pushes"), len(pushStats.Acked))
	t.Logf("during GC %s", pullStats.summary("pulls"))
	t.Logf("during GC %s; %d acknowledged", pushStats.summary("pushes"), len(pushStats.Acked))
	for _, l := range append(pullStats.Failures, pushStats.Failures...) {
		t.Logf("  failure: %s", l)
	}
	if len(pullStats.Failures) > 0 {
		f.Report.Fact("pull failures during GC (incl. retried):\n%s", strings.Join(pullStats.Failures, "\n"))
	}
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	if pullStats.Failed > 0 {
		t.Errorf("%d pulls failed during GC even after retries", pullStats.Failed)
	}
	if pullStats.OK+pullStats.OKAfterRetry == 0 {
		t.Errorf("no pull completed during GC")
	}
	if err := f.WaitReady(ctx, 2); err != nil {
		t.Fatalf("registry not Ready after GC: %v", err)
	}

	// Storage: the deleted image's blobs are gone, the kept image's are not.
	onDisk, err = f.blobsOnDisk(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range keep.Blobs() {
		if !onDisk[b.Digest] {
			t.Errorf("GC deleted blob %s of the tagged image %s", b.Digest, keep.Ref())
		}
	}
	gone := 0
	for _, b := range drop.Blobs() {
		if onDisk[b.Digest] {
			t.Errorf("blob %s of the deleted image is still at %s after GC", b.Digest, blobDataPath(b.Hex()))
		} else {
			gone++
		}
	}
	f.Report.Fact("GC removed %d of %d blobs of the deleted image from storage; %d blobs of the kept image intact", gone, len(drop.Blobs()), len(keep.Blobs()))

	// The cache was flushed: no descriptor of a deleted blob is left to answer "exists".
	keys, err := f.RedisCachedBlobs(ctx, drop.Blobs())
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range drop.Blobs() {
		if keys["blobs::"+b.Digest] {
			t.Errorf("redis still has blobs::%s of a collected blob (cache not flushed after GC)", b.Digest)
		}
	}

	// No push may have been acknowledged while GC ran: the window between "every replica is
	// read-only" and "back to read-write" in the GC job's log.
	if len(pushStats.Acked) == 0 {
		t.Errorf("no push was acknowledged around the GC run: the race with GC was not exercised")
	}
	if win, err := gcReadOnlyWindow(gcRes.Logs, time.Now()); err != nil {
		t.Errorf("GC job log: %v", err)
	} else {
		before, inside, after := win.classify(pushStats.AckedAt)
		msg := fmt.Sprintf("pushes racing GC: %d acknowledged before the read-only window, %d inside it (%s-%s UTC, GC mark and sweep), %d after writes were restored; %d refused with 405 in between",
			before, inside, win.readOnly.Format("15:04:05"), win.writable.Format("15:04:05"), after, pushStats.Refused)
		t.Log(msg)
		f.Report.Fact("%s", msg)
		if inside > 0 {
			t.Errorf("%d pushes were acknowledged while GC ran (the registry was not read-only)", inside)
		}
	}

	// Everything acknowledged, before and during GC, pulls with the right digest, by tag and by
	// digest: a blob collected under an acknowledged manifest would fail here.
	images := append(append([]*kit.Image{}, f.survivors...), pushStats.Acked...)
	err = f.Timed("pull after GC", func() (string, error) {
		total := 0
		for _, im := range images {
			n, err := f.Client.PullImage(ctx, im.Tag, im)
			if err != nil {
				return "", err
			}
			total += n
			if n, err = f.Client.PullImage(ctx, im.Digest, im); err != nil {
				return "", err
			}
			total += n
		}
		return fmt.Sprintf("%d images (%d pushed during GC) by tag and digest, %s", len(images), len(pushStats.Acked), kit.MiB(total)), nil
	})
	if err != nil {
		t.Errorf("an acknowledged image is lost after GC: %v", err)
	}
	f.survivors = append(f.survivors, pushStats.Acked...)

	// Re-push the deleted image with HEAD-before-upload like docker: a stale cache would answer
	// "exists" for the collected layers and the image would not pull.
	var res *kit.PushResult
	err = f.Timed("re-push deleted image", func() (string, error) {
		var err error
		res, err = f.Client.PushImage(ctx, drop)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d blobs uploaded, %d reported as existing", len(res.Uploads), res.Skipped), nil
	})
	if err != nil {
		t.Fatalf("re-push of %s after GC: %v", drop.Ref(), err)
	}
	if res.Skipped > 0 {
		t.Errorf("the registry claimed %d collected blobs of %s still exist (stale cache)", res.Skipped, drop.Ref())
	}
	if _, err := f.Client.PullImage(ctx, drop.Tag, drop); err != nil {
		t.Fatalf("re-pushed image does not pull: %v", err)
	}
	t.Logf("re-pushed %s@%s pulls with identical digests and layer contents", drop.Ref(), drop.Digest)
	f.survivors = append(f.survivors, drop)
}

// gcWindow is the part of a GC run during which the registry must refuse writes: from "every
// replica is read-only" until the restore step starts switching back (log times have seconds
// resolution, in UTC).
type gcWindow struct {
	readOnly, writable time.Time
}

var gcLogTimeRE = regexp.MustCompile(`(?m)^(\d{2}:\d{2}:\d{2}) maintenance: (every replica is read-only|switching deployment/\S+ back to read-write)`)

// gcReadOnlyWindow finds the window in the GC job's logs; ref (a time shortly after the job) fixes
// the date of the time-of-day stamps.
func gcReadOnlyWindow(logs string, ref time.Time) (gcWindow, error) {
	var w gcWindow
	for _, m := range gcLogTimeRE.FindAllStringSubmatch(logs, -1) {
		tod, err := time.Parse("15:04:05", m[1])
		if err != nil {
			return w, fmt.Errorf("time %q: %w", m[1], err)
		}
		r := ref.UTC()
		at := time.Date(r.Year(), r.Month(), r.Day(), tod.Hour(), tod.Minute(), tod.Second(), 0, time.UTC)
		if at.After(r.Add(time.Hour)) { // the job ran before midnight, ref is after it
			at = at.AddDate(0, 0, -1)
		}
		if strings.HasPrefix(m[2], "every") {
			w.readOnly = at
		} else {
			w.writable = at
		}
	}
	if w.readOnly.IsZero() || w.writable.IsZero() || w.writable.Before(w.readOnly) {
		return w, fmt.Errorf("no read-only window (read-only %v, back to read-write %v) in the logs:\n%s", w.readOnly, w.writable, kit.Tail(logs, 30))
	}
	return w, nil
}

// classify counts acknowledgement times before, inside and after the window. A log stamp is the
// start of its second and the pod's clock may differ a little from this machine's, so "inside" is
// the window shrunk by 2 s at the start and 1 s at the end.
func (w gcWindow) classify(acked []time.Time) (before, inside, after int) {
	for _, at := range acked {
		switch {
		case !at.After(w.readOnly.Add(2 * time.Second)):
			before++
		case at.Before(w.writable.Add(-time.Second)):
			inside++
		default:
			after++
		}
	}
	return before, inside, after
}

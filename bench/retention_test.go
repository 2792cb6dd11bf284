//go:build e2e

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// benchRetention fills RetentionRepos repositories with RetentionTags tags each (tiny images, one
// created a day apart), then runs two GC Jobs with the write probe: GC alone, then with a policy
// that keeps the 5 newest tags of each repository (the Job deletes the rest and frees them). The
// difference is what retention adds to a night's run; the write pause must not grow, because
// retention runs while the registry is writable.
func (b *bench) benchRetention(t *testing.T) {
	ctx := context.Background()
	res := &retentionResult{Repos: b.cfg.RetentionRepos, Tags: b.cfg.RetentionTags, Keep: 5}
	b.res.mu.Lock()
	b.res.Retention = res
	b.res.mu.Unlock()
	pusher, prober := b.gcClients(ctx, t)
	now := time.Now()
	total := res.Repos * res.Tags
	start := time.Now()
	err := forEach(total, b.cfg.GCWorkers, func(i int) error {
		repo, tag := fmt.Sprintf("bench-ret/r%03d", i/res.Tags), fmt.Sprintf("t%02d", i%res.Tags)
		im, err := kit.RandomImageAt(repo, tag, 1, 256, now.AddDate(0, 0, -(i%res.Tags)))
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		return pushSmall(pctx, pusher, im)
	})
	res.PushSeconds = time.Since(start).Seconds()
	if err != nil {
		t.Fatalf("push %d tags: %v", total, err)
	}
	t.Logf("pushed %d tags in %d repositories in %.0fs", total, res.Repos, res.PushSeconds)

	gcOnly, err := b.gcWithProbe(ctx, t, prober, "bench-ret-gc")
	if err != nil {
		t.Fatalf("GC alone: %v", err)
	}
	res.GCOnly = *gcOnly

	raw, err := json.Marshal(map[string]any{"policies": []map[string]any{{"repositories": []string{"bench-ret/*"}, "keepNewest": res.Keep}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.f.Pulumi.SetConfig(ctx, map[string]string{"retention": string(raw)}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.f.TimedUp(ctx, "pulumi up (retention on)", "up-retention"); err != nil {
		t.Fatal(err)
	}
	with, err := b.gcWithProbe(ctx, t, prober, "bench-ret")
	if err != nil {
		t.Fatalf("retention + GC: %v", err)
	}
	res.WithRetention = *with
	for r := 0; r < res.Repos; r += res.Repos / 10 {
		tags, err := pusher.Tags(ctx, fmt.Sprintf("bench-ret/r%03d", r))
		if err != nil {
			t.Fatal(err)
		}
		if len(tags) != res.Keep {
			t.Errorf("bench-ret/r%03d keeps %d tags, want %d: %v", r, len(tags), res.Keep, tags)
		}
	}
	t.Logf("GC alone: job %.0fs, pause %.1fs; retention + GC: job %.0fs (retention %.0fs), pause %.1fs",
		gcOnly.JobSeconds, gcOnly.Pause.WindowSeconds, with.JobSeconds, with.Steps["retention"], with.Pause.WindowSeconds)
}

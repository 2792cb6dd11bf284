//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// Load loops run beside a disruptive operation (GC now; pod loss, Redis outage and rolling config
// changes later) and count what the client saw. They are paced by a ticker so that they measure
// availability without saturating a small CI machine.

// loadStats are the counts of one loop, guarded by mu while the loop runs.
type loadStats struct {
	mu sync.Mutex
	loadCounts
}

// loadCounts are plain counts. Failures lists every failed attempt, including those a retry later
// hid, so the report shows them all.
type loadCounts struct {
	Attempts     int
	OK           int
	OKAfterRetry int // succeeded, but only after one or more retried failures
	Failed       int // failed even after retries
	Refused      int // pushes refused cleanly with 405 (registry read-only)
	Bytes        int
	Failures     []string
	Acked        []*kit.Image // pushes the registry acknowledged
	AckedAt      []time.Time  // when each push of Acked was acknowledged (same index)
}

func (s *loadStats) fail(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Failures = append(s.Failures, time.Now().Format("15:04:05.000")+" "+msg)
}

// snapshot copies the counters under the lock.
func (s *loadStats) snapshot() loadCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.loadCounts
	c.Failures = append([]string(nil), s.Failures...)
	c.Acked = append([]*kit.Image(nil), s.Acked...)
	c.AckedAt = append([]time.Time(nil), s.AckedAt...)
	return c
}

// loop is a running load loop; stop ends it and returns its counts.
type loop struct {
	cancel context.CancelFunc
	done   chan struct{}
	stats  *loadStats
}

func (l *loop) stop() loadCounts {
	l.cancel()
	<-l.done
	return l.stats.snapshot()
}

// startLoop calls iteration every interval until stopped. The iteration gets a context that is
// cancelled only by stop, plus a client whose retried failures are recorded in the stats.
func startLoop(ctx context.Context, c *kit.RegistryClient, interval time.Duration, iteration func(ctx context.Context, c *kit.RegistryClient, s *loadStats, retried *int)) *loop {
	ctx, cancel := context.WithCancel(ctx)
	l := &loop{cancel: cancel, done: make(chan struct{}), stats: &loadStats{}}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			retried := 0
			rc := c.WithRetryHook(func(op string, err error) {
				retried++
				l.stats.fail(fmt.Sprintf("retried %s: %v", op, err))
			})
			iteration(ctx, rc, l.stats, &retried)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return l
}

// startPullLoop pulls img again and again and verifies it completely each time.
func startPullLoop(ctx context.Context, c *kit.RegistryClient, img *kit.Image, interval time.Duration) *loop {
	return startLoop(ctx, c, interval, func(ctx context.Context, rc *kit.RegistryClient, s *loadStats, retried *int) {
		n, err := rc.PullImage(ctx, img.Tag, img)
		if ctx.Err() != nil {
			return // stopped mid-pull: not a result
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.Attempts++
		switch {
		case err != nil:
			s.Failed++
			s.Failures = append(s.Failures, time.Now().Format("15:04:05.000")+" pull failed: "+err.Error())
		case *retried > 0:
			s.OKAfterRetry++
			s.Bytes += n
		default:
			s.OK++
			s.Bytes += n
		}
	})
}

// startPushLoop pushes a fresh small image (one random layer) per iteration into repo. Every push
// the registry acknowledges is recorded in Acked; a 405 (read-only) counts as a clean refusal.
func startPushLoop(ctx context.Context, c *kit.RegistryClient, repo string, layerBytes int, interval time.Duration) *loop {
	n := 0
	return startLoop(ctx, c, interval, func(ctx context.Context, rc *kit.RegistryClient, s *loadStats, retried *int) {
		n++
		img, err := kit.RandomImage(repo, fmt.Sprintf("load-%03d", n), 1, layerBytes)
		if err != nil {
			s.fail("build image: " + err.Error())
			return
		}
		_, err = rc.PushImage(ctx, img)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.Attempts++
		switch {
		case err == nil && *retried > 0:
			s.OKAfterRetry++
			s.Acked = append(s.Acked, img)
			s.AckedAt = append(s.AckedAt, time.Now())
		case err == nil:
			s.OK++
			s.Acked = append(s.Acked, img)
			s.AckedAt = append(s.AckedAt, time.Now())
		case kit.HTTPStatus(err) == 405:
			s.Refused++
		default:
			s.Failed++
			s.Failures = append(s.Failures, time.Now().Format("15:04:05.000")+" push "+img.Ref()+" failed: "+err.Error())
		}
	})
}

// summary is a one-line description of the counts.
func (s loadCounts) summary(kind string) string {
	msg := fmt.Sprintf("%s: %d attempts, %d ok, %d ok after retry, %d failed", kind, s.Attempts, s.OK, s.OKAfterRetry, s.Failed)
	if s.Refused > 0 || kind == "pushes" {
		msg += fmt.Sprintf(", %d refused (405 read-only)", s.Refused)
	}
	if s.Bytes > 0 {
		msg += ", " + kit.MiB(s.Bytes) + " verified"
	}
	return msg
}

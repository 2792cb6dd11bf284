//go:build e2e

package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regstack/registry-stack/e2e/kit"
)

// writeResults writes bench.json (raw samples), bench.md (tables) and bench.png (plot) into
// OutDir. It runs at the end of TestBench, also after a failed part, with what was measured.
func (b *bench) writeResults(t *testing.T) {
	var phases []phaseResult
	for _, st := range b.f.Report.Steps() { // the parts, in the order the fixture ran them
		phases = append(phases, phaseResult{Name: st.Name, Result: st.Result, Seconds: st.Duration.Seconds()})
	}
	r := b.res
	r.mu.Lock()
	r.Finished = time.Now().UTC()
	r.Phases = phases
	r.mu.Unlock()
	if err := os.MkdirAll(b.cfg.OutDir, 0o755); err != nil {
		t.Errorf("results dir: %v", err)
		return
	}
	r.mu.Lock()
	data, err := json.MarshalIndent(r, "", " ")
	md := r.markdown(t.Failed())
	r.mu.Unlock()
	if err != nil {
		t.Errorf("encode results: %v", err)
		return
	}
	for name, content := range map[string][]byte{"bench.json": data, "bench.md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(b.cfg.OutDir, name), content, 0o644); err != nil {
			t.Errorf("write %s: %v", name, err)
		}
	}
	r.mu.Lock()
	err = r.plot(filepath.Join(b.cfg.OutDir, "bench.png"))
	r.mu.Unlock()
	if err != nil {
		t.Errorf("plot: %v", err)
	}
	t.Logf("results: %s/bench.{md,json,png}\n%s", b.cfg.OutDir, md)
}

func f1(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.1f", x)
}

func f2(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

func ratio(a, b float64) string {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func rangeOf(xs []float64, format func(float64) string) string {
	if len(xs) == 0 {
		return "–"
	}
	lo, hi := minMax(xs)
	return format(lo) + "–" + format(hi)
}

// dataLabels describe the variants in the tables.
var dataLabels = map[string][2]string{
	varIngress:          {"Ingress", "https → ingress address (sandbox: kubectl port-forward) → Traefik → Service → 2 replicas, Redis cache"},
	varDirect:           {"direct to one pod", "http → kubectl port-forward → one registry pod :5000 (same auth)"},
	varPF:               {"port-forward alone", "the same bytes through kubectl port-forward to `nc` in a pod (no registry)"},
	varDisk:             {"disk", "push: plain copy + fsync of the layer files on the registry's filesystem; pull: read back + sha256"},
	varClusterIngress:   {"in cluster → ingress", "benchpod (same Go client) in a pod → ingress controller's HTTPS entry point (SNI: registry, TLS verified) → 2 replicas; no port-forward; layers only (no manifest)"},
	varClusterSvc:       {"in cluster → Service", "benchpod in a pod → registry Service → one of 2 pods, http; no port-forward; layers only"},
	varS3Ingress:        {"S3: Ingress", "as Ingress, storage.s3 (the S3 fixture: versitygw, posix on the node's disk, TLS)"},
	varS3ClusterIngress: {"S3: in cluster → ingress", "as in cluster → ingress, storage.s3"},
	varS3ClusterSvc:     {"S3: in cluster → Service", "as in cluster → Service, storage.s3: the registry proxies every byte"},
	varS3Redirect:       {"S3: in cluster → Service, redirect", "storage.s3.redirect on: GET answered 307, benchpod follows the presigned URL to the S3 Service (pull only)"},
	varMirrorCold:       {"mirror, cold", "https → port-forward → Traefik → mirror pod, which fetches each blob from the registry (Traefik's in-cluster Service, TLS) while serving it"},
	varMirrorWarm:       {"mirror, warm", "the same image again through the mirror: blobs from its own claim (the tag still checked upstream)"},
	varMirrorDirect:     {"registry itself", "the same image through the registry's own Ingress (as Ingress above)"},
}

func (r *benchResults) markdown(failed bool) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("# registry-stack benchmarks\n\n")
	w("`make bench` (TestBench, `bench/BENCH.md`), %s → %s. Figures are medians of interleaved runs; ratios compare variants measured side by side in the same run.\n\n",
		r.Started.Format("2006-01-02 15:04 MST"), r.Finished.Format("15:04 MST"))
	if failed {
		w("**The run had failures: some tables are incomplete (see the test log).**\n\n")
	}
	w("| machine | |\n|---|---|\n")
	for _, row := range [][2]string{
		{"CPU", fmt.Sprintf("%s, nproc %d, %s RAM", m.CPU, m.NProc, m.MemTotal)},
		{"kernel / filesystem", m.Kernel + " / " + m.Filesystem},
		{"Go / Pulumi CLI", m.GoVersion + " / " + m.PulumiVersion},
		{"Kubernetes server / kubectl", m.KubeServer + " / " + m.KubectlClient},
		{"images", fmt.Sprintf("%s, %s, ingress %s", m.RegistryImage, m.RedisImage, m.IngressImage)},
		{"ingress address", m.IngressAddr},
	} {
		w("| %s | %s |\n", row[0], row[1])
	}
	w("\n")
	for _, n := range r.Notes {
		w("> %s\n\n", n)
	}

	if d := r.Data; d != nil && len(d.Samples) > 0 {
		med := func(v, op string) float64 { x, _ := d.median(v, op); return x }
		w("## Summary: ratios of medians\n\n| data path | push | pull |\n|---|---|---|\n")
		for _, row := range [][3]string{
			{"Ingress / direct to one pod", varIngress, varDirect},
			{"direct to one pod / disk", varDirect, varDisk},
			{"direct to one pod / port-forward alone", varDirect, varPF},
			{"port-forward alone / disk", varPF, varDisk},
			{"Ingress / disk", varIngress, varDisk},
			{"direct to one pod / in cluster → Service (the port-forward's share)", varDirect, varClusterSvc},
			{"in cluster → ingress / in cluster → Service (the ingress controller's share, with TLS)", varClusterIngress, varClusterSvc},
			{"in cluster → Service / disk (the registry's own distance to the disk)", varClusterSvc, varDisk},
		} {
			w("| %s | %s | %s |\n", row[0], ratio(med(row[1], "push"), med(row[2], "push")), ratio(med(row[1], "pull"), med(row[2], "pull")))
		}
		w("\n")
	}
	if d := r.Mirror; d != nil && len(d.Samples) > 0 {
		w("## Mirror: pulls through a pull-through cache\n\nA fresh %.0f MiB image (%d layers, %d at once) per round, pushed to the registry, then pulled through a mirror of it: "+
			"cold first, then warm and from the registry itself in alternating order.\n\n", float64(d.ImageBytes)/(1<<20), d.Layers, d.Parallel)
		b.WriteString(variantTable(d, mirrorVariants))
		med := func(v string) float64 { x, _ := d.median(v, "pull"); return x }
		w("\n| ratio of medians | pull |\n|---|---|\n")
		w("| mirror warm / registry itself | %s |\n", ratio(med(varMirrorWarm), med(varMirrorDirect)))
		w("| mirror cold / registry itself | %s |\n", ratio(med(varMirrorCold), med(varMirrorDirect)))
		w("| mirror warm / mirror cold | %s |\n\n", ratio(med(varMirrorWarm), med(varMirrorCold)))
	}

	if h := r.Head; h != nil && len(h.Samples) > 0 {
		if r.Data == nil || len(r.Data.Samples) == 0 {
			w("## Summary: ratios of medians\n\n")
		}
		w("| HEAD latency | p50 | p99 |\n|---|---|---|\n")
		for _, p := range headPaths {
			warm, dis := h.pooledWarm(p), h.Samples[headDisabled+"/"+p]
			w("| cache disabled / warm, %s | %s | %s |\n", p, ratio(percentile(dis, 50), percentile(warm, 50)), ratio(percentile(dis, 99), percentile(warm, 99)))
		}
		for _, p := range headPaths {
			warm, noauth := h.pooledWarm(p), h.Samples[headKey(headWarm, p, false)]
			w("| with credentials (200) / without (401: no password check, no lookup), cache warm, %s | %s | %s |\n", p,
				ratio(percentile(warm, 50), percentile(noauth, 50)), ratio(percentile(warm, 99), percentile(noauth, 99)))
		}
		for _, p := range headPaths {
			if c10 := h.Samples[headCost10+"/"+p]; len(c10) > 0 {
				warm := h.pooledWarm(p)
				w("| htpasswd bcrypt cost 10 (before) / the stack's cost 4, with credentials, %s | %s | %s |\n", p,
					ratio(percentile(c10, 50), percentile(warm, 50)), ratio(percentile(c10, 99), percentile(warm, 99)))
			}
		}
		if sl := h.SmallLayers; len(sl[headCost10+"/push"]) > 0 && len(sl[headWarm+"/push"]) > 0 {
			w("| %d small layers, cost 10 / cost 4: push, pull (medians) | %s | %s |\n", smallLayerCount,
				ratio(median(sl[headCost10+"/push"]), median(sl[headWarm+"/push"])), ratio(median(sl[headCost10+"/pull"]), median(sl[headWarm+"/pull"])))
		}
		w("\n")
	}
	if d := r.Data; d != nil && len(d.Samples) > 0 {
		w("\n## 1. Data path\n\n")
		w("Image of %s (%d layers of random data, uncompressed tar, fresh per run so nothing is deduplicated), %d layers moved at once; "+
			"each variant pushes then pulls (sha256 verified) in every round, in rotated order (A,B,C,D / B,C,D,A / …).\n\n",
			kit.MiB(int(d.ImageBytes)), d.Layers, d.Parallel)
		w("%s", variantTable(d, dataVariants))
		w("\n")
	}

	if d := r.S3; d != nil && len(d.Samples) > 0 {
		w("\n## 1b. Data path on S3\n\n")
		w("The same stack moved to `storage.s3` (`pulumi up`), image of %s (%d layers), %d at once, one fresh image per round through the rotated variants; "+
			"then `storage.s3.redirect: true` (`pulumi up`) and the same images pulled again in cluster, following the redirects (not interleaved with the others: it needs a rollout).\n\n",
			kit.MiB(int(d.ImageBytes)), d.Layers, d.Parallel)
		w("%s", variantTable(d, s3Variants))
		w("\n| ratio of medians | push | pull |\n|---|---|---|\n")
		for _, v := range s3Variants {
			fs := r.Data
			if fs == nil {
				break
			}
			sp, _ := d.median(v, "push")
			sl, _ := d.median(v, "pull")
			bp, _ := fs.median(s3Base[v], "push")
			bl, _ := fs.median(s3Base[v], "pull")
			w("| %s / filesystem %s | %s | %s |\n", dataLabels[v][0], dataLabels[s3Base[v]][0], ratio(sp, bp), ratio(sl, bl))
		}
		rd, _ := d.median(varS3Redirect, "pull")
		px, _ := d.median(varS3ClusterSvc, "pull")
		w("| S3 in cluster: redirect / proxied by the registry | | %s |\n\n", ratio(rd, px))
	}

	if h := r.Head; h != nil && len(h.Samples) > 0 {
		w("## 2. Blob existence checks (HEAD)\n\n")
		w("HEAD on existing blobs (%d blobs of 1 KiB, cycled), sequential on one keep-alive connection per path, in 10 batches alternating the paths; "+
			"warm = cache on and every blob looked up once before; disabled = `cache.enabled=false` + `pulumi up` (Redis removed); warm again = `cache.enabled=true` + `pulumi up` (new Redis), a shorter drift check. "+
			"The same requests without credentials are answered 401 before any password check or lookup: the round trip of the path itself.\n\n", h.Blobs)
		w("| cache | path | request | n | p50 ms | p90 ms | p99 ms | max ms | errors |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, st := range []string{headWarm, headCost10, headDisabled, headWarm2} {
			for _, auth := range []bool{true, false} {
				for _, p := range headPaths {
					k := headKey(st, p, auth)
					xs, ok := h.Samples[k]
					if !ok {
						continue
					}
					req := "HEAD blob, credentials → 200"
					if !auth {
						req = "same, no credentials → 401"
					}
					_, hi := minMax(xs)
					w("| %s | %s | %s | %d | **%s** | %s | **%s** | %s | %d |\n", map[string]string{headWarm: "warm", headCost10: "warm, htpasswd cost 10 (before)", headDisabled: "disabled", headWarm2: "warm again"}[st],
						p, req, len(xs), f2(percentile(xs, 50)), f2(percentile(xs, 90)), f2(percentile(xs, 99)), f2(hi), h.Errors[k])
				}
			}
		}
		for _, st := range []string{headWarm, headCost10} {
			if sl := h.SmallLayers; len(sl[st+"/push"]) > 0 {
				w("\nImage of %d layers of %d KiB through the Ingress, cache warm, htpasswd cost %s, %d rounds (fresh random layers each): push median **%.2f s** (%s), pull median **%.2f s** (%s).\n",
					smallLayerCount, smallLayerBytes>>10, map[string]string{headWarm: "4 (the stack's)", headCost10: "10 (before)"}[st], len(sl[st+"/push"]),
					median(sl[st+"/push"]), rangeOf(sl[st+"/push"], f2), median(sl[st+"/pull"]), rangeOf(sl[st+"/pull"], f2))
			}
		}
		for _, p := range headPaths {
			auth, noauth := h.pooledWarm(p), h.Samples[headKey(headWarm, p, false)]
			if len(auth) > 0 && len(noauth) > 0 {
				w("\n%s, cache warm: p50 with credentials − without = **%.1f ms** per request: the registry's htpasswd check (a cost-4 bcrypt of the password on every request) plus the lookup.",
					p, percentile(auth, 50)-percentile(noauth, 50))
			}
		}
		w("\n")
		keys := make([]string, 0, len(h.Switch))
		for k := range h.Switch {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			w("\n`pulumi up` for `%s` until the registry pods are rolled and Ready: %.1f s", k, h.Switch[k])
		}
		w("\n\n")
	}

	if d := r.Deploy; d != nil && len(d.Samples) > 0 {
		w("## 3. Deploy\n\n")
		w("Each cycle starts from a namespace that does not exist and no volume or data (destroy, PV and hostPath data removed between cycles). "+
			"Times from the start of the command; the first `pulumi preview` of the run, which compiles the program, took %.1f s and is not counted.\n\n", d.FirstPreviewSec)
		w("| step | median s | min–max s | runs |\n|---|---|---|---|\n")
		for _, mt := range deployMetrics {
			xs := d.Samples[mt.Key]
			if len(xs) == 0 {
				continue
			}
			w("| %s | **%s** | %s | %d |\n", mt.Label, f1(median(xs)), rangeOf(xs, f1), len(xs))
		}
		w("\n")
	}

	if g := r.GC; g != nil && len(g.Levels) > 0 {
		w("## 4. Garbage collection\n\n")
		w("Repositories of one tiny single-layer image each, pushed in parallel through the Ingress (cumulative; the registry also holds the images of the parts before). "+
			"A Job from the CronJob at each size; step times from the pod's container timestamps (1 s resolution). "+
			"Write pause: a probe starts an upload (POST) every ~%d ms through the Ingress; window = first 405 → first 202 after the last 405.\n\n", r.Config.ProbeMillis)
		steps := g.Levels[0].StepOrder
		w("| repositories | push rate (images/s) | GC Job wall s |")
		for _, s := range steps {
			w(" %s s |", s)
		}
		w(" write pause s | longest 405 run s | 202 inside pause | probes 405/202/other |\n|---|---|---|")
		for range steps {
			w("---|")
		}
		w("---|---|---|---|\n")
		for _, l := range g.Levels {
			w("| %d | %.0f | **%.0f** |", l.Repos, float64(l.Pushed)/l.PushSeconds, l.JobSeconds)
			for _, s := range steps {
				w(" %.0f |", l.Steps[s])
			}
			w(" **%.1f** | %.1f | %d | %d/%d/%d |\n", l.Pause.WindowSeconds, l.Pause.LongestRefusal, l.Pause.AcceptedInside, l.Pause.Refused, l.Pause.Accepted, l.Pause.Other)
		}
		w("\n")
		for _, l := range g.Levels {
			if l.CollectorLog != "" {
				w("- %d repositories: `%s`\n", l.Repos, strings.ReplaceAll(l.CollectorLog, "\n", "` · `"))
			}
			for _, e := range l.Pause.OtherExamples {
				w("- %d repositories, probe: %s\n", l.Repos, e)
			}
		}
		w("\n")
	}

	if rt := r.Retention; rt != nil && rt.WithRetention.JobSeconds > 0 {
		g, w2 := rt.GCOnly, rt.WithRetention
		w("## 4b. Retention + GC\n\n")
		w("%d repositories × %d tags (tiny images created a day apart, %.0f s to push), then a GC Job alone and a GC Job with a policy keeping the %d newest tags of each repository "+
			"(deletes %d tags), each with the write probe of section 4.\n\n", rt.Repos, rt.Tags, rt.PushSeconds, rt.Keep, rt.Repos*(rt.Tags-rt.Keep))
		w("| run | Job wall s | retention step s | garbage-collect s | write pause s | probes 405/202/other |\n|---|---|---|---|---|---|\n")
		for _, l := range []struct {
			name string
			lv   gcLevel
		}{{"GC alone", g}, {"retention + GC", w2}} {
			w("| %s | **%.0f** | %.0f | %.0f | **%.1f** | %d/%d/%d |\n", l.name, l.lv.JobSeconds, l.lv.Steps["retention"], l.lv.Steps["garbage-collect"],
				l.lv.Pause.WindowSeconds, l.lv.Pause.Refused, l.lv.Pause.Accepted, l.lv.Pause.Other)
		}
		if g.JobSeconds > 0 && g.Pause.WindowSeconds > 0 {
			w("\nRatios (retention + GC / GC alone): Job wall %.2f×, write pause %.2f×.\n", w2.JobSeconds/g.JobSeconds, w2.Pause.WindowSeconds/g.Pause.WindowSeconds)
		}
		w("\n")
	}

	if tk := r.Token; tk != nil && len(tk.Samples["token/auth"]) > 0 {
		w("## 4c. Token auth against htpasswd\n\n")
		w("HEAD of an existing blob through the Ingress, %d per variant, interleaved in batches; then a %d-layer push and pull (%d KiB layers, %d rounds). The token client keeps its token, as docker does.\n\n",
			tk.Heads, smallLayerCount, smallLayerBytes>>10, smallLayerRounds)
		w("| mode | HEAD p50 ms with credentials | HEAD p50 ms without (401) | ratio | 20-layer push s (median) | pull s (median) |\n|---|---|---|---|---|---|\n")
		for _, m := range []string{"htpasswd", "token"} {
			a, n := percentile(tk.Samples[m+"/auth"], 50), percentile(tk.Samples[m+"/noauth"], 50)
			w("| %s | %.2f | %.2f | **%.2f×** | %.2f | %.2f |\n", m, a, n, a/n, median(tk.SmallLayers[m+"/push"]), median(tk.SmallLayers[m+"/pull"]))
		}
		ht, tt := median(tk.SmallLayers["htpasswd/push"]), median(tk.SmallLayers["token/push"])
		hp, tp := median(tk.SmallLayers["htpasswd/pull"]), median(tk.SmallLayers["token/pull"])
		w("\nToken / htpasswd: authenticated HEAD p50 %.2f×, push %.2f×, pull %.2f×. Switch up + rollout: to token %.0f s, back %.0f s.\n\n",
			percentile(tk.Samples["token/auth"], 50)/percentile(tk.Samples["htpasswd/auth"], 50), tt/ht, tp/hp, tk.SwitchSeconds["token"], tk.SwitchSeconds["htpasswd"])
	}

	if u := r.Unit; u != nil && len(u.Runs) > 0 {
		var wall, sum, mx []float64
		tests, pkgs := 0, 0
		for _, run := range u.Runs {
			wall, sum, mx = append(wall, run.WallSeconds), append(sum, run.SumElapsed), append(mx, run.MaxElapsed)
			tests, pkgs = run.Tests, run.Packages
		}
		w("## 5. Unit test suite\n\n`go test -count=1 ./...` (no e2e tag), warm build cache (one untimed run first), %d packages with tests, %d top-level tests.\n\n", pkgs, tests)
		w("| measure | median s | min–max s | runs |\n|---|---|---|---|\n")
		w("| wall time of the command (compile from cache, link, run) | **%s** | %s | %d |\n", f1(median(wall)), rangeOf(wall, f1), len(wall))
		w("| test binaries' run time, sum over packages (`-json` Elapsed) | **%s** | %s | %d |\n", f1(median(sum)), rangeOf(sum, f1), len(sum))
		w("| slowest package | %s | %s | %d |\n\n", f1(median(mx)), rangeOf(mx, f1), len(mx))
	}

	w("## Parts of this run\n\n| part | result | s |\n|---|---|---|\n")
	for _, p := range r.Phases {
		w("| %s | %s | %.0f |\n", p.Name, p.Result, p.Seconds)
	}
	return b.String()
}

// pooledWarm is the warm samples of a path from both warm phases.
func (h *headResult) pooledWarm(path string) []float64 {
	return append(append([]float64{}, h.Samples[headWarm+"/"+path]...), h.Samples[headWarm2+"/"+path]...)
}

// variantTable is the table of data-path variants: medians and ranges of push and pull.
func variantTable(d *dataResult, variants []string) string {
	var b strings.Builder
	b.WriteString("| variant | path | push MiB/s (median) | push min–max | pull MiB/s (median) | pull min–max | runs |\n|---|---|---|---|---|---|---|\n")
	for _, v := range variants {
		var push, pull []float64
		for _, s := range d.Samples {
			if s.Variant == v && s.Op == "push" {
				push = append(push, s.MiBps)
			} else if s.Variant == v && s.Op == "pull" {
				pull = append(pull, s.MiBps)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | **%s** | %s | **%s** | %s | %d |\n", dataLabels[v][0], dataLabels[v][1], f1(median(push)), rangeOf(push, f1),
			f1(median(pull)), rangeOf(pull, f1), max(len(push), len(pull)))
	}
	return b.String()
}

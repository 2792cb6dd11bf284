//go:build e2e

package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"github.com/regstack/registry-stack/e2e/kit"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	colA = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colB = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colC = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// groupedBars adds one bar series per group, side by side at each X category, each bar labelled
// with its value, and leaves headroom above the tallest bar for the legend.
func groupedBars(p *plot.Plot, names []string, series [][]float64, colors []color.Color, width vg.Length) error {
	n := len(series)
	top := 0.0
	for i, s := range series {
		vals := make(plotter.Values, len(s))
		var xys plotter.XYs
		var texts []string
		for j, x := range s {
			vals[j] = finite(x)
			top = max(top, vals[j])
			xys = append(xys, plotter.XY{X: float64(j), Y: vals[j]})
			texts = append(texts, valueText(x))
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.LineStyle.Width = 0
		bars.Color = colors[i%len(colors)]
		offset := vg.Length(float64(i)-float64(n-1)/2) * width
		bars.Offset = offset
		p.Add(bars)
		p.Legend.Add(names[i], bars)
		labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return err
		}
		for k := range labels.TextStyle {
			labels.TextStyle[k].XAlign = draw.XCenter
			labels.TextStyle[k].Font.Size = vg.Points(9)
		}
		labels.Offset = vg.Point{X: offset, Y: vg.Points(2)}
		p.Add(labels)
	}
	if top > 0 {
		p.Y.Max = top * 1.3
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(6)
	return nil
}

func valueText(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func newBarPlot(title, ylabel string, x []string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = ylabel
	p.Y.Min = 0
	if len(x) > 0 { // NominalX panics on an empty list; such a panel is not drawn
		p.NominalX(x...)
	}
	p.Add(plotter.NewGrid())
	return p
}

// plot draws the four panels (data path, HEAD latency, deploy, GC) into one PNG, from whatever
// parts have samples. A panic in the plotting library becomes an error: the results must be written
// and the fixture's teardown must run whatever happens here.
func (r *benchResults) plot(path string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("plot: panic: %v", p)
		}
	}()
	panels := []*plot.Plot{}
	add := func(p *plot.Plot, n int) {
		if n > 0 {
			panels = append(panels, p)
		}
	}

	if d := r.Data; d != nil && len(d.Samples) > 0 {
		short := map[string]string{varIngress: "Ingress\n(https, pf)", varDirect: "one pod\n(pf)", varPF: "port-fwd\nalone",
			varClusterIngress: "in cluster\n→ ingress", varClusterSvc: "in cluster\n→ Service", varDisk: "disk\n(copy / read)"}
		var labels []string
		var push, pull []float64
		for _, v := range dataVariants {
			_, np := d.median(v, "push")
			if _, n := d.median(v, "pull"); n+np == 0 {
				continue
			}
			labels = append(labels, short[v])
			x, _ := d.median(v, "push")
			y, _ := d.median(v, "pull")
			push, pull = append(push, x), append(pull, y)
		}
		p := newBarPlot(fmt.Sprintf("Data path: %s image, median MiB/s", kit.MiB(int(d.ImageBytes))), "MiB/s", labels)
		if err := groupedBars(p, []string{"push", "pull"}, [][]float64{push, pull}, []color.Color{colA, colB}, vg.Points(28)); err != nil {
			return err
		}
		add(p, len(labels))
	}
	if h := r.Head; h != nil && len(h.Samples) > 0 {
		var labels []string
		var p50, p99 []float64
		for _, path := range headPaths {
			for _, v := range []struct{ key, label string }{{headWarm, "cache warm"}, {headDisabled, "cache off"}, {"noauth", "no creds, 401"}} {
				var xs []float64
				switch v.key {
				case headWarm:
					xs = h.pooledWarm(path)
				case headDisabled:
					xs = h.Samples[headDisabled+"/"+path]
				default:
					xs = h.Samples[headKey(headWarm, path, false)]
				}
				labels = append(labels, path+"\n"+v.label)
				p50, p99 = append(p50, percentile(xs, 50)), append(p99, percentile(xs, 99))
			}
		}
		p := newBarPlot("Blob HEAD latency (ms)", "ms", labels)
		if err := groupedBars(p, []string{"p50", "p99"}, [][]float64{p50, p99}, []color.Color{colA, colB}, vg.Points(22)); err != nil {
			return err
		}
		add(p, len(labels))
	}
	if d := r.Deploy; d != nil && len(d.Samples) > 0 {
		keys := []string{"up", "up_ready", "preview_noop", "scale_up", "scale_up_ready", "scale_down", "destroy"}
		short := map[string]string{"up": "up\n(create)", "up_ready": "up →\nReady", "preview_noop": "preview\nno-op",
			"scale_up": "up 2→3", "scale_up_ready": "2→3\nReady", "scale_down": "up 3→2", "destroy": "destroy"}
		var labels []string
		var vals []float64
		for _, k := range keys {
			if xs := d.Samples[k]; len(xs) > 0 {
				labels = append(labels, short[k])
				vals = append(vals, median(xs))
			}
		}
		p := newBarPlot("Deploy, median s", "s", labels)
		if err := groupedBars(p, []string{"median"}, [][]float64{vals}, []color.Color{colC}, vg.Points(30)); err != nil {
			return err
		}
		add(p, len(labels))
	}
	if g := r.GC; g != nil && len(g.Levels) > 0 {
		var labels []string
		var job, collect, pause []float64
		for _, l := range g.Levels {
			labels = append(labels, fmt.Sprintf("%d repos", l.Repos))
			job = append(job, l.JobSeconds)
			collect = append(collect, l.Steps["garbage-collect"])
			pause = append(pause, l.Pause.WindowSeconds)
		}
		p := newBarPlot("GC: Job wall, collector step, write pause", "s", labels)
		if err := groupedBars(p, []string{"GC Job", "garbage-collect step", "write pause"}, [][]float64{job, collect, pause},
			[]color.Color{colA, colC, colB}, vg.Points(24)); err != nil {
			return err
		}
		add(p, len(labels))
	}
	if len(panels) == 0 {
		return nil
	}

	const cols = 2
	rows := (len(panels) + cols - 1) / cols
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	img := vgimg.New(vg.Points(1100), vg.Points(float64(430*rows)))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(30), PadY: vg.Points(30),
		PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(10)}
	canvases := plot.Align(grid, tiles, dc)
	for j := range grid {
		for i, p := range grid[j] {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

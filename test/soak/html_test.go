package soak

import (
	"bytes"
	"fmt"
	"html"
	"slices"
)

// series is one line of a chart.
type series struct {
	name string
	ys   []float64
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"}

// html renders the timeline as one self-contained page of SVG charts (it
// fetches nothing).
func (tl *timeline) html() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!doctype html><meta charset=utf-8><title>wsd churn soak</title>\n"+
		"<style>body{font:14px sans-serif;margin:2em}svg{background:#fafafa;border:1px solid #ddd}</style>\n"+
		"<h1>wsd churn soak</h1><p>target %d connects+disconnects/s for %s. Baseline after warm-up: %s. End: %s.</p>\n",
		tl.Rate, html.EscapeString(tl.Duration), html.EscapeString(tl.Baseline.String()), html.EscapeString(tl.End.String()))
	xs := make([]float64, len(tl.Points))
	col := func(f func(p point) float64) []float64 {
		out := make([]float64, len(tl.Points))
		for i, p := range tl.Points {
			xs[i] = p.T
			out[i] = f(p)
		}
		return out
	}
	chart(&b, "open connections (wsd_connections)", xs, series{"conns", col(func(p point) float64 { return p.Conns })})
	chart(&b, "churn completed per second", xs, series{"conns/s", col(func(p point) float64 { return p.ConnsPerS })})
	chart(&b, "RSS (MiB)", xs, series{"RSS", col(func(p point) float64 { return p.RSSMiB })})
	chart(&b, "goroutines and fds", xs,
		series{"goroutines", col(func(p point) float64 { return float64(p.Goroutines) })},
		series{"fds", col(func(p point) float64 { return float64(p.FDs) })})
	chart(&b, "echo p99 per second (ms)", xs, series{"p99", col(func(p point) float64 { return p.P99ms })})
	var causes []string
	for _, p := range tl.Points {
		for c := range p.Closes {
			if !slices.Contains(causes, c) {
				causes = append(causes, c)
			}
		}
	}
	slices.Sort(causes)
	var cs []series
	for _, c := range causes {
		cs = append(cs, series{c, col(func(p point) float64 { return p.Closes[c] })})
	}
	chart(&b, "closes per second by cause (wsd_closes_total)", xs, cs...)
	return b.Bytes()
}

// chart writes one SVG line chart with a legend.
func chart(b *bytes.Buffer, title string, xs []float64, ss ...series) {
	const w, h, pad = 900.0, 220.0, 50.0
	maxX, maxY := 1.0, 1.0
	for _, x := range xs {
		maxX = max(maxX, x)
	}
	for _, s := range ss {
		for _, y := range s.ys {
			maxY = max(maxY, y)
		}
	}
	fmt.Fprintf(b, "<h3>%s</h3><svg width=%.0f height=%.0f>\n", html.EscapeString(title), w+160, h+pad)
	fmt.Fprintf(b, "<line x1=%.0f y1=%.0f x2=%.0f y2=%.0f stroke=#999 />", pad, h, w, h)
	fmt.Fprintf(b, "<line x1=%.0f y1=10 x2=%.0f y2=%.0f stroke=#999 />", pad, pad, h)
	fmt.Fprintf(b, "<text x=2 y=20 font-size=11>%.4g</text><text x=2 y=%.0f font-size=11>0</text>", maxY, h)
	fmt.Fprintf(b, "<text x=%.0f y=%.0f font-size=11>%.0f s</text>", w-30, h+20, maxX)
	for i, s := range ss {
		color := palette[i%len(palette)]
		var pts bytes.Buffer
		for j, y := range s.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", pad+(w-pad)*xs[j]/maxX, h-(h-10)*y/maxY)
		}
		fmt.Fprintf(b, "<polyline fill=none stroke=%q stroke-width=1.5 points=%q />", color, pts.String())
		fmt.Fprintf(b, "<text x=%.0f y=%d font-size=12 fill=%q>%s</text>\n", w+10, 20+16*i, color, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
}

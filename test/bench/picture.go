package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The picture's geometry, in SVG user units: the plot area, with the title above,
// the axes' labels below and to the left, and the legend to the right.
const (
	svgWidth, svgHeight   = 900, 480
	plotLeft, plotTop     = 70.0, 50.0
	plotRight, plotBottom = 680.0, 420.0
)

// The runs' colours: the operator's and the Indexed Job's.
const (
	operatorColour = "#1f77b4"
	indexedColour  = "#d62728"
)

// line is one series of a plot, its points in data units.
type line struct {
	label  string
	colour string
	dashed bool
	points [][2]float64
}

// endToEndSVG plots the end-to-end runs' task pods over time: for each run, the pods
// running (dashed) and finished (solid), against the seconds since the run was
// created. The y axis reaches at least the run's tasks, the x axis the longer run's
// duration.
func endToEndSVG(e EndToEnd) string {
	title := fmt.Sprintf("End to end, %d tasks, parallelism %d: operator %.1f s, Indexed Job %.1f s (%.2f×)",
		e.Tasks, e.Parallelism, e.OperatorSeconds, e.IndexedSeconds, e.Ratio)
	runs := []struct {
		name, colour string
		pods         Timeline
	}{{"operator", operatorColour, e.OperatorPods}, {"Indexed Job", indexedColour, e.IndexedPods}}
	var lines []line
	for _, r := range runs {
		running := line{label: r.name + ": running", colour: r.colour, dashed: true}
		finished := line{label: r.name + ": finished", colour: r.colour}
		for _, s := range r.pods.Samples {
			running.points = append(running.points, [2]float64{s.Seconds, float64(s.Running)})
			finished.points = append(finished.points, [2]float64{s.Seconds, float64(s.Finished)})
		}
		lines = append(lines, running, finished)
	}
	return plotSVG(title, "seconds since the run was created", "task pods", lines,
		max(e.OperatorSeconds, e.IndexedSeconds), float64(e.Tasks))
}

// plotSVG draws lines on axes from 0 to at least xAtLeast and yAtLeast (more if a
// point lies beyond), each rounded up to a tick.
func plotSVG(title, xLabel, yLabel string, lines []line, xAtLeast, yAtLeast float64) string {
	xMax, yMax := xAtLeast, yAtLeast
	for _, l := range lines {
		for _, p := range l.points {
			xMax, yMax = max(xMax, p[0]), max(yMax, p[1])
		}
	}
	xStep, yStep := niceStep(xMax, 8), niceStep(yMax, 5)
	xMax, yMax = axisEnd(xMax, xStep), axisEnd(yMax, yStep)
	px := func(x float64) float64 { return plotLeft + x/xMax*(plotRight-plotLeft) }
	py := func(y float64) float64 { return plotBottom - y/yMax*(plotBottom-plotTop) }

	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`,
		svgWidth, svgHeight, svgWidth, svgHeight)
	w(`<rect width="100%%" height="100%%" fill="white"/>`)
	w(`<text x="%d" y="25" text-anchor="middle" font-size="15">%s</text>`, svgWidth/2, esc(title))
	// Grid and ticks.
	for i := 0; float64(i)*xStep <= xMax*(1+1e-9); i++ {
		x := float64(i) * xStep
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, px(x), plotTop, px(x), plotBottom)
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`, px(x), plotBottom, px(x), plotBottom+5)
		w(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, px(x), plotBottom+19, tickLabel(x, xStep))
	}
	for i := 0; float64(i)*yStep <= yMax*(1+1e-9); i++ {
		y := float64(i) * yStep
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e5e5e5"/>`, plotLeft, py(y), plotRight, py(y))
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`, plotLeft-5, py(y), plotLeft, py(y))
		w(`<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, plotLeft-8, py(y), tickLabel(y, yStep))
	}
	// Axes and their labels.
	w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`, plotLeft, plotBottom, plotRight, plotBottom)
	w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`, plotLeft, plotTop, plotLeft, plotBottom)
	w(`<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, (plotLeft+plotRight)/2, plotBottom+42, esc(xLabel))
	w(`<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`,
		(plotTop+plotBottom)/2, (plotTop+plotBottom)/2, esc(yLabel))
	// The lines, then the legend.
	for _, l := range lines {
		pts := make([]string, len(l.points))
		for i, p := range l.points {
			pts[i] = fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1]))
		}
		w(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>`,
			l.colour, dash(l.dashed), strings.Join(pts, " "), esc(l.label))
	}
	for i, l := range lines {
		y := plotTop + 10 + float64(i)*22
		w(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/>`,
			plotRight+20, y, plotRight+50, y, l.colour, dash(l.dashed))
		w(`<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`, plotRight+58, y, esc(l.label))
	}
	w(`</svg>`)
	return b.String()
}

func dash(dashed bool) string {
	if dashed {
		return ` stroke-dasharray="6 4"`
	}
	return ""
}

// niceStep is a tick step of 1, 2 or 5 times a power of ten that divides [0, end]
// into at most about n steps.
func niceStep(end float64, n int) float64 {
	if end <= 0 || math.IsNaN(end) || math.IsInf(end, 0) {
		return 1
	}
	raw := end / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// axisEnd is end rounded up to a whole step (one step for an empty axis).
func axisEnd(end, step float64) float64 {
	if end <= 0 || math.IsNaN(end) || math.IsInf(end, 0) {
		return step
	}
	return math.Ceil(end/step-1e-9) * step
}

// tickLabel prints v with as many decimals as step needs.
func tickLabel(v, step float64) string {
	decimals := max(0, int(-math.Floor(math.Log10(step))))
	return strconv.FormatFloat(v, 'f', decimals, 64)
}

func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // writes to memory: no error
	return b.String()
}

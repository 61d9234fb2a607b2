package bench

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
)

// polyline is a plotted line as the SVG holds it.
type polyline struct {
	stroke, label string
	dashed        bool
	points        [][2]float64
}

// parseSVG decodes every element of an SVG (failing on XML that is not well formed)
// and returns its polylines and its texts.
func parseSVG(t *testing.T, svg string) ([]polyline, []string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	var lines []polyline
	var texts []string
	var in []string // the open elements
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(in) == 0 && (tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("the root element is %v, want svg in the SVG namespace", tok.Name)
			}
			in = append(in, tok.Name.Local)
			if tok.Name.Local != "polyline" {
				continue
			}
			var l polyline
			for _, a := range tok.Attr {
				switch a.Name.Local {
				case "stroke":
					l.stroke = a.Value
				case "stroke-dasharray":
					l.dashed = true
				case "points":
					for _, p := range strings.Fields(a.Value) {
						x, y, _ := strings.Cut(p, ",")
						px, err1 := strconv.ParseFloat(x, 64)
						py, err2 := strconv.ParseFloat(y, 64)
						if err1 != nil || err2 != nil {
							t.Fatalf("point %q of a polyline", p)
						}
						l.points = append(l.points, [2]float64{px, py})
					}
				}
			}
			lines = append(lines, l)
		case xml.EndElement:
			in = in[:len(in)-1]
		case xml.CharData:
			s := strings.TrimSpace(string(tok))
			switch {
			case s == "" || len(in) == 0:
			case in[len(in)-1] == "title" && len(in) >= 2 && in[len(in)-2] == "polyline":
				lines[len(lines)-1].label = s
			case in[len(in)-1] == "text":
				texts = append(texts, s)
			}
		}
	}
	return lines, texts
}

func TestEndToEndSVG(t *testing.T) {
	// The operator: 10 s, a sample every second, 100 running, 100 more finished each
	// second. The Indexed Job: 5 s, 200 finished each second.
	var op, ix [][3]int
	for i := range 11 {
		op = append(op, [3]int{0, 100, 100 * i})
	}
	for i := range 6 {
		ix = append(ix, [3]int{0, 100, 200 * i})
	}
	e := EndToEnd{Tasks: 1000, Parallelism: 100, OperatorSeconds: 10, IndexedSeconds: 5, Ratio: 2,
		OperatorPods: timeline(1, op), IndexedPods: timeline(1, ix)}
	lines, texts := parseSVG(t, endToEndSVG(e))

	want := []struct {
		label, stroke string
		dashed        bool
		points        int
	}{
		{"operator: running", operatorColour, true, 11},
		{"operator: finished", operatorColour, false, 11},
		{"Indexed Job: running", indexedColour, true, 6},
		{"Indexed Job: finished", indexedColour, false, 6},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d polylines, want %d", len(lines), len(want))
	}
	for i, w := range want {
		l := lines[i]
		if l.label != w.label || l.stroke != w.stroke || l.dashed != w.dashed || len(l.points) != w.points {
			t.Errorf("line %d: %q %s dashed=%v with %d points, want %q %s dashed=%v with %d",
				i, l.label, l.stroke, l.dashed, len(l.points), w.label, w.stroke, w.dashed, w.points)
		}
	}
	// The axes run from 0 to 10 s and 0 to 1,000 pods (whole ticks already): the
	// operator's last finished point is the plot's top right corner, its first the
	// bottom left, and the Indexed Job's end halfway across.
	near := func(what string, got, want [2]float64) {
		t.Helper()
		if math.Abs(got[0]-want[0]) > 0.06 || math.Abs(got[1]-want[1]) > 0.06 {
			t.Errorf("%s at %v, want %v", what, got, want)
		}
	}
	opFinished, ixFinished, opRunning := lines[1].points, lines[3].points, lines[0].points
	near("the operator's start", opFinished[0], [2]float64{plotLeft, plotBottom})
	near("the operator's end", opFinished[10], [2]float64{plotRight, plotTop})
	near("the Indexed Job's end", ixFinished[5], [2]float64{(plotLeft + plotRight) / 2, plotTop})
	near("100 pods running", opRunning[3], [2]float64{plotLeft + 0.3*(plotRight-plotLeft), plotBottom - 0.1*(plotBottom-plotTop)})

	joined := strings.Join(texts, "\n")
	for _, s := range []string{
		"End to end, 1000 tasks, parallelism 100: operator 10.0 s, Indexed Job 5.0 s (2.00×)",
		"seconds since the run was created", "task pods",
		"operator: running", "operator: finished", "Indexed Job: running", "Indexed Job: finished",
		"0\n2\n4\n6\n8\n10",           // x ticks
		"0\n200\n400\n600\n800\n1000", // y ticks
	} {
		if !strings.Contains(joined, s) {
			t.Errorf("the SVG's texts lack %q:\n%s", s, joined)
		}
	}
}

func TestEndToEndSVGScalesToWhatItDraws(t *testing.T) {
	tests := map[string]struct {
		e EndToEnd
		// top is the point expected at the plot's top edge: line, index.
		line, index int
		wantY       float64
	}{
		"more finished pods than tasks (retried pods) widen the y axis to a whole tick": {
			e: EndToEnd{Tasks: 100, OperatorSeconds: 1, IndexedSeconds: 1,
				OperatorPods: timeline(0.5, [][3]int{{0, 0, 0}, {0, 10, 50}, {0, 0, 130}})},
			line: 1, index: 2, wantY: plotBottom - 130.0/150*(plotBottom-plotTop), // ticks of 50
		},
		"a run with no samples still draws its axes": {
			e:    EndToEnd{Tasks: 1000},
			line: -1,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			lines, texts := parseSVG(t, endToEndSVG(tc.e))
			if len(lines) != 4 {
				t.Fatalf("%d polylines, want 4", len(lines))
			}
			if !strings.Contains(strings.Join(texts, "\n"), "seconds since the run was created") {
				t.Errorf("no x axis label: %q", texts)
			}
			if tc.line < 0 {
				return
			}
			if got := lines[tc.line].points[tc.index][1]; math.Abs(got-tc.wantY) > 0.06 {
				t.Errorf("y = %v, want %v", got, tc.wantY)
			}
		})
	}
}

func TestNiceStep(t *testing.T) {
	tests := map[string]struct {
		end     float64
		n       int
		step    float64
		axisEnd float64
		label   string // the tick label of 3 steps
	}{
		"a thousand tasks in 5 ticks": {end: 1000, n: 5, step: 200, axisEnd: 1000, label: "600"},
		"56.2 s in 8 ticks":           {end: 56.2, n: 8, step: 10, axisEnd: 60, label: "30"},
		"18.5 s in 8 ticks":           {end: 18.5, n: 8, step: 5, axisEnd: 20, label: "15"},
		"under a second":              {end: 0.7, n: 8, step: 0.1, axisEnd: 0.7, label: "0.3"},
		"an empty axis":               {end: 0, n: 5, step: 1, axisEnd: 1, label: "3"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			step := niceStep(tc.end, tc.n)
			if math.Abs(step-tc.step) > 1e-12 {
				t.Fatalf("niceStep(%v, %d) = %v, want %v", tc.end, tc.n, step, tc.step)
			}
			if got := axisEnd(tc.end, step); math.Abs(got-tc.axisEnd) > 1e-9 {
				t.Errorf("axisEnd = %v, want %v", got, tc.axisEnd)
			}
			if got := tickLabel(3*step, step); got != tc.label {
				t.Errorf("tickLabel = %q, want %q", got, tc.label)
			}
		})
	}
}

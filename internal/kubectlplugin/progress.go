package kubectlplugin

import (
	"fmt"
	"math"
	"strings"
	"time"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// progress is what one observation of a Job says about its run, reduced to what the
// watch shows.
type progress struct {
	Name  string
	State costv1.JobState // "" until the operator picks the Job up
	// Ending is the outcome the run reached while its records are committed or
	// rolled back ("" otherwise).
	Ending  costv1.JobState
	Planned bool
	Total   int32
	// Done counts the tasks that finished, whatever their outcome.
	Done int32
	// Failed counts the tasks that failed or timed out.
	Failed    int32
	Running   int32
	Created   int64
	StartedAt time.Time // zero until the operator picks the Job up
	// FinishedAt is when the run ended (zero while it runs).
	FinishedAt time.Time
	ErrorCode  string
	ErrorMsg   string
}

func progressOf(j *costv1.Job) progress {
	st := j.Status
	p := progress{
		Name:      j.Name,
		State:     st.Status,
		Total:     st.TotalTasks,
		Done:      st.TotalTasks - st.RemainedTasks,
		Failed:    st.Tasks.Failure + st.Tasks.Timeout,
		Running:   st.Tasks.InProgress,
		Created:   st.CreatedCount,
		ErrorCode: st.ErrorCode,
		ErrorMsg:  st.ErrorMessage,
	}
	if p.Done < 0 {
		p.Done = 0
	}
	if st.Ending != nil && !st.Status.Finished() {
		p.Ending = st.Ending.Status
	}
	if st.StartedAt != nil {
		p.StartedAt = st.StartedAt.Time
	}
	if st.FinishedAt != nil {
		p.FinishedAt = st.FinishedAt.Time
	}
	for _, c := range st.Conditions {
		if c.Type == costv1.ConditionPlanned && c.Status == "True" {
			p.Planned = true
		}
	}
	return p
}

// phase says in words where the run is.
func (p progress) phase() string {
	switch {
	case p.State == "":
		return "waiting for the operator"
	case p.State.Finished():
		return string(p.State)
	case p.Ending == costv1.JobSuccess:
		return "committing records"
	case p.Ending != "":
		return "rolling back (" + string(p.Ending) + ")"
	case !p.Planned && p.Total == 0:
		return "planning"
	}
	return string(p.State)
}

// rateWindow is how far back the rate looks: long enough to smooth out tasks that
// finish in bursts, short enough to follow a run that slows down.
const rateWindow = time.Minute

// sample is the number of finished tasks at a moment.
type sample struct {
	at   time.Time
	done int32
}

// rateMeter measures how fast tasks finish, from the observations of a watch.
type rateMeter struct {
	samples []sample
}

// seed records that the run had finished no task when it started: a watch that
// attaches to a run halfway gets a rate at once.
func (m *rateMeter) seed(startedAt time.Time) {
	if startedAt.IsZero() || len(m.samples) > 0 {
		return
	}
	m.samples = append(m.samples, sample{at: startedAt, done: 0})
}

// observe records the number of finished tasks at a moment.
func (m *rateMeter) observe(at time.Time, done int32) {
	if n := len(m.samples); n > 0 && m.samples[n-1].done == done {
		return // only changes carry information; the rate decays with time anyway
	}
	m.samples = append(m.samples, sample{at: at, done: done})
	// Keep the newest sample older than the window as the base, drop the rest.
	cut := 0
	for i := range m.samples {
		if at.Sub(m.samples[i].at) > rateWindow {
			cut = i
		}
	}
	m.samples = m.samples[cut:]
}

// rate is tasks per second from the base sample to now; 0 when it cannot be told.
// Measured up to now rather than to the last change, so that a run that stalls
// shows its rate falling and its ETA growing.
func (m *rateMeter) rate(now time.Time) float64 {
	if len(m.samples) < 2 {
		return 0
	}
	base, last := m.samples[0], m.samples[len(m.samples)-1]
	elapsed := now.Sub(base.at).Seconds()
	if elapsed <= 0 || last.done <= base.done {
		return 0
	}
	return float64(last.done-base.done) / elapsed
}

// eta is the time left for remaining tasks at rate; false when it cannot be told.
func eta(remaining int32, rate float64) (time.Duration, bool) {
	if remaining <= 0 {
		return 0, true
	}
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return 0, false
	}
	secs := float64(remaining) / rate
	if secs > float64(100*24*time.Hour/time.Second) {
		return 0, false // not a useful figure
	}
	return time.Duration(math.Ceil(secs)) * time.Second, true
}

// frame is one rendering of the watch: the progress and the figures derived from it.
type frame struct {
	progress
	Rate float64
	// ETA is valid when HasETA.
	ETA    time.Duration
	HasETA bool
}

func newFrame(p progress, m *rateMeter, now time.Time) frame {
	f := frame{progress: p, Rate: m.rate(now)}
	f.ETA, f.HasETA = eta(p.Total-p.Done, f.Rate)
	return f
}

// figures is the part of a line both renderings share:
// "4/8 tasks  0.50 tasks/s  ETA 8s  1 failed".
func (f frame) figures() string {
	rate := "-- tasks/s"
	if f.Rate > 0 {
		rate = formatRate(f.Rate)
	}
	eta := "ETA --"
	if f.HasETA && f.Total > 0 && f.State == costv1.JobInProgress && f.Ending == "" {
		eta = "ETA " + formatDuration(f.ETA)
	}
	return fmt.Sprintf("%d/%d tasks  %s  %s  %d failed", f.Done, f.Total, rate, eta, f.Failed)
}

func formatRate(r float64) string {
	switch {
	case r >= 10:
		return fmt.Sprintf("%.0f tasks/s", r)
	case r >= 0.1:
		return fmt.Sprintf("%.2f tasks/s", r)
	}
	return fmt.Sprintf("%.1f tasks/min", r*60)
}

// formatDuration is a duration as people read it: 8s, 2m05s, 1h02m.
func formatDuration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

// percent of the tasks done, 0 when there are none yet.
func (f frame) percent() int {
	if f.Total <= 0 {
		return 0
	}
	return int(int64(f.Done) * 100 / int64(f.Total))
}

// Bar widths: the bar shrinks to fit the terminal, and goes when it cannot fit.
const (
	maxBarWidth = 30
	minBarWidth = 10
)

// renderBar is the terminal's one-line progress bar, at most width columns:
// "[=========>          ] 45%  4/8 tasks  0.50 tasks/s  ETA 8s  1 failed  IN_PROGRESS".
func renderBar(f frame, width int) string {
	text := fmt.Sprintf(" %3d%%  %s  %s", f.percent(), f.figures(), f.phase())
	bar := min(maxBarWidth, width-len(text)-2)
	if bar < minBarWidth {
		return truncate(strings.TrimLeft(text, " "), width)
	}
	filled := 0
	if f.Total > 0 {
		filled = int(int64(bar) * int64(f.Done) / int64(f.Total))
	}
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(strings.Repeat("=", filled))
	if filled < bar {
		b.WriteByte('>')
		b.WriteString(strings.Repeat(" ", bar-filled-1))
	}
	b.WriteByte(']')
	b.WriteString(text)
	return b.String()
}

// renderLine is one plain line of progress, for output that is not a terminal.
func renderLine(f frame, now time.Time) string {
	return fmt.Sprintf("%s  %s  %s", now.UTC().Format(time.TimeOnly), f.phase(), f.figures())
}

// lineKey is what must change for a plain output to print a new line.
func lineKey(p progress) string {
	return fmt.Sprintf("%s/%s/%v/%d/%d/%d", p.State, p.Ending, p.Planned, p.Total, p.Done, p.Failed)
}

// summary is the last line of a watch: how the run ended.
func summary(p progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d/%d tasks finished, %d failed, %d records", p.State, p.Done, p.Total, p.Failed, p.Created)
	if !p.StartedAt.IsZero() && p.FinishedAt.After(p.StartedAt) {
		fmt.Fprintf(&b, ", in %s", formatDuration(p.FinishedAt.Sub(p.StartedAt)))
	}
	switch {
	case p.ErrorCode != "" && p.ErrorMsg != "":
		fmt.Fprintf(&b, " (%s: %s)", p.ErrorCode, p.ErrorMsg)
	case p.ErrorCode != "" || p.ErrorMsg != "":
		fmt.Fprintf(&b, " (%s)", p.ErrorCode+p.ErrorMsg)
	}
	return b.String()
}

func truncate(s string, width int) string {
	if width <= 0 || len(s) <= width {
		return s
	}
	return s[:width]
}

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

package kubectlplugin

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

var t0 = time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)

func TestRateAndETA(t *testing.T) {
	type obs struct {
		after time.Duration
		done  int32
	}
	tests := map[string]struct {
		startedAt time.Duration // from t0; negative means unknown
		obs       []obs
		now       time.Duration
		total     int32
		wantRate  float64
		wantETA   time.Duration
		wantNoETA bool
	}{
		"a single observation of a run not started tells no rate": {
			startedAt: -1, obs: []obs{{0, 0}}, now: 5 * time.Second, total: 8,
			wantRate: 0, wantNoETA: true,
		},
		"four tasks in eight seconds is half a task a second, eight seconds for four more": {
			startedAt: -1, obs: []obs{{0, 0}, {4 * time.Second, 2}, {8 * time.Second, 4}}, now: 8 * time.Second, total: 8,
			wantRate: 0.5, wantETA: 8 * time.Second,
		},
		"the rate falls while nothing finishes, and the ETA grows": {
			startedAt: -1, obs: []obs{{0, 0}, {8 * time.Second, 4}}, now: 16 * time.Second, total: 8,
			wantRate: 0.25, wantETA: 16 * time.Second,
		},
		"a watch attached halfway counts from the run's start": {
			startedAt: 0, obs: []obs{{20 * time.Second, 10}}, now: 20 * time.Second, total: 30,
			wantRate: 0.5, wantETA: 40 * time.Second,
		},
		"samples older than the window give way to the newest one before it": {
			startedAt: -1, obs: []obs{{0, 0}, {30 * time.Second, 1}, {90 * time.Second, 61}, {120 * time.Second, 91}},
			now: 120 * time.Second, total: 100,
			// At 120s the samples at 0s and 30s are out of the window; the newer one
			// (30s, 1 done) stays as the base: 90 tasks in 90s.
			wantRate: 1, wantETA: 9 * time.Second,
		},
		"an ETA is rounded up to the second": {
			startedAt: -1, obs: []obs{{0, 0}, {3 * time.Second, 1}}, now: 3 * time.Second, total: 2,
			wantRate: 1.0 / 3, wantETA: 3 * time.Second,
		},
		"no task left is no time left": {
			startedAt: -1, obs: []obs{{0, 0}, {2 * time.Second, 2}}, now: 2 * time.Second, total: 2,
			wantRate: 1, wantETA: 0,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var m rateMeter
			if tc.startedAt >= 0 {
				m.seed(t0.Add(tc.startedAt))
			}
			for _, o := range tc.obs {
				m.observe(t0.Add(o.after), o.done)
			}
			now := t0.Add(tc.now)
			rate := m.rate(now)
			if diff := rate - tc.wantRate; diff > 1e-9 || diff < -1e-9 {
				t.Errorf("rate %v tasks/s, want %v", rate, tc.wantRate)
			}
			last := tc.obs[len(tc.obs)-1].done
			d, ok := eta(tc.total-last, rate)
			if ok == tc.wantNoETA || (ok && d != tc.wantETA) {
				t.Errorf("ETA %v (known %v), want %v (known %v)", d, ok, tc.wantETA, !tc.wantNoETA)
			}
		})
	}
}

func TestRateWindowDropsOldSamples(t *testing.T) {
	var m rateMeter
	m.observe(t0, 0)
	m.observe(t0.Add(10*time.Second), 100) // a burst long ago
	for i := range int32(10) {
		m.observe(t0.Add(time.Duration(200+10*i)*time.Second), 101+i)
	}
	// 200s..290s: one task per 10s. At 290s the samples before 230s are out of the
	// window; the newest of them (220s, 103 done) stays as the base: 7 tasks in 70s.
	if got := m.rate(t0.Add(290 * time.Second)); got < 0.099 || got > 0.101 {
		t.Errorf("rate %v, want 0.1 tasks/s: the early burst must have left the window", got)
	}
	if len(m.samples) > 8 {
		t.Errorf("%d samples kept, want only the window's", len(m.samples))
	}
}

func TestRenderBar(t *testing.T) {
	running := progress{Name: "r", State: costv1.JobInProgress, Planned: true, Total: 8, Done: 4, Failed: 1}
	tests := map[string]struct {
		f     frame
		width int
		want  string
	}{
		"half done with a rate and an ETA": {
			f: frame{progress: running, Rate: 0.5, ETA: 8 * time.Second, HasETA: true}, width: 100,
			want: "[===============>              ]  50%  4/8 tasks  0.50 tasks/s  ETA 8s  1 failed  IN_PROGRESS",
		},
		"no rate yet shows dashes": {
			f: frame{progress: running}, width: 100,
			want: "[===============>              ]  50%  4/8 tasks  -- tasks/s  ETA --  1 failed  IN_PROGRESS",
		},
		"a slow run shows tasks per minute": {
			f: frame{progress: running, Rate: 0.05, ETA: 80 * time.Second, HasETA: true}, width: 100,
			want: "[===============>              ]  50%  4/8 tasks  3.0 tasks/min  ETA 1m20s  1 failed  IN_PROGRESS",
		},
		"the bar shrinks to fit the terminal": {
			f: frame{progress: running, Rate: 0.5, ETA: 8 * time.Second, HasETA: true}, width: 80,
			want: "[========>        ]  50%  4/8 tasks  0.50 tasks/s  ETA 8s  1 failed  IN_PROGRESS",
		},
		"a narrow terminal drops the bar": {
			f: frame{progress: running, Rate: 0.5, ETA: 8 * time.Second, HasETA: true}, width: 64,
			want: "50%  4/8 tasks  0.50 tasks/s  ETA 8s  1 failed  IN_PROGRESS",
		},
		"a very narrow terminal cuts the line": {
			f: frame{progress: running, Rate: 0.5, ETA: 8 * time.Second, HasETA: true}, width: 20,
			want: "50%  4/8 tasks  0.50",
		},
		"a finished run fills the bar": {
			f: frame{progress: progress{State: costv1.JobSuccess, Planned: true, Total: 8, Done: 8}, Rate: 2, HasETA: true}, width: 100,
			want: "[==============================] 100%  8/8 tasks  2.00 tasks/s  ETA --  0 failed  SUCCESS",
		},
		"a Job not picked up yet": {
			f: frame{progress: progress{}}, width: 100,
			want: "[>                         ]   0%  0/0 tasks  -- tasks/s  ETA --  0 failed  waiting for the operator",
		},
		"planning": {
			f: frame{progress: progress{State: costv1.JobInProgress}}, width: 100,
			want: "[>                             ]   0%  0/0 tasks  -- tasks/s  ETA --  0 failed  planning",
		},
		"committing": {
			f: frame{progress: progress{State: costv1.JobInProgress, Ending: costv1.JobSuccess, Planned: true, Total: 2, Done: 2}}, width: 100,
			want: "[==============================] 100%  2/2 tasks  -- tasks/s  ETA --  0 failed  committing records",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := renderBar(tc.f, tc.width)
			if got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if len(got) > tc.width {
				t.Errorf("%d columns, want at most %d", len(got), tc.width)
			}
		})
	}
}

func TestPhaseAndLines(t *testing.T) {
	p := progress{State: costv1.JobInProgress, Planned: true, Total: 8, Done: 3, Failed: 0}
	line := renderLine(frame{progress: p, Rate: 1, ETA: 5 * time.Second, HasETA: true}, t0.Add(90*time.Second))
	if want := "07:01:30  IN_PROGRESS  3/8 tasks  1.00 tasks/s  ETA 5s  0 failed"; line != want {
		t.Errorf("line %q, want %q", line, want)
	}
	same := p
	same.Running = 4
	if lineKey(p) != lineKey(same) {
		t.Error("a change of running tasks alone makes a new plain line; only done, failed, totals and phase should")
	}
	for _, changed := range []progress{
		{State: costv1.JobInProgress, Planned: true, Total: 8, Done: 4},
		{State: costv1.JobInProgress, Planned: true, Total: 8, Done: 3, Failed: 1},
		{State: costv1.JobInProgress, Planned: true, Total: 8, Done: 3, Ending: costv1.JobFailure},
		{State: costv1.JobFailure, Planned: true, Total: 8, Done: 3},
	} {
		if lineKey(changed) == lineKey(p) {
			t.Errorf("%+v: same line key as %+v", changed, p)
		}
	}
	if got := (progress{State: costv1.JobInProgress, Ending: costv1.JobCanceled}).phase(); got != "rolling back (CANCELED)" {
		t.Errorf("phase %q", got)
	}
}

func TestSummary(t *testing.T) {
	p := progressOf(&costv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "r"},
		Status: costv1.JobStatus{
			Status: costv1.JobFailure, TotalTasks: 8, RemainedTasks: 0, CreatedCount: 0,
			Tasks:     costv1.TaskCounts{Success: 5, Failure: 1, Canceled: 2},
			ErrorCode: costv1.ErrorJobTask, ErrorMessage: "task 3 failed",
			StartedAt: &metav1.Time{Time: t0}, FinishedAt: &metav1.Time{Time: t0.Add(75 * time.Second)},
		},
	})
	want := "FAILURE: 8/8 tasks finished, 1 failed, 0 records, in 1m15s (ERROR_JOB_TASK: task 3 failed)"
	if got := summary(p); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	p.ErrorMsg, p.StartedAt = "", time.Time{}
	if got, want := summary(p), "FAILURE: 8/8 tasks finished, 1 failed, 0 records (ERROR_JOB_TASK)"; got != want {
		t.Errorf("without a message or a start:\ngot  %q\nwant %q", got, want)
	}
}

func TestOutcomeExitCodes(t *testing.T) {
	tests := map[costv1.JobState]int{
		costv1.JobSuccess:    ExitSuccess,
		costv1.JobFailure:    ExitFailure,
		costv1.JobTimeout:    ExitTimeout,
		costv1.JobCanceled:   ExitCanceled,
		costv1.JobInProgress: ExitError,
		"":                   ExitError,
	}
	seen := map[int]costv1.JobState{}
	for state, want := range tests {
		if got := exitCode(outcome(state)); got != want {
			t.Errorf("%q: exit code %d, want %d", state, got, want)
		}
		if state.Finished() {
			if other, dup := seen[want]; dup {
				t.Errorf("%s and %s share exit code %d", state, other, want)
			}
			seen[want] = state
		}
	}
	if exitCode(errors.New("boom")) != ExitError {
		t.Error("a plain error must exit 1")
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                    "0s",
		59 * time.Second:                     "59s",
		61 * time.Second:                     "1m01s",
		time.Hour + 2*time.Minute + 3e9:      "1h02m",
		1500 * time.Millisecond:              "2s",
		26*time.Hour + 59*time.Minute:        "26h59m",
		3*time.Minute + 500*time.Millisecond: "3m01s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestJobName(t *testing.T) {
	for arg, want := range map[string]string{
		"r-x7k2p":                                "r-x7k2p",
		"cajob/r-x7k2p":                          "r-x7k2p",
		"job.cost-analysis.costops.dev/r-x7k2p":  "r-x7k2p",
		"jobs.cost-analysis.costops.dev/r-x7k2p": "r-x7k2p",
	} {
		if got, err := jobName(arg); err != nil || got != want {
			t.Errorf("jobName(%q) = %q, %v; want %q", arg, got, err, want)
		}
	}
	for _, bad := range []string{"job/r", "jobs.batch/r", "cajob/"} {
		if _, err := jobName(bad); err == nil {
			t.Errorf("jobName(%q): want an error (not a cost-analysis Job)", bad)
		}
	}
}

func TestJobGenerateName(t *testing.T) {
	if got := jobGenerateName("sample-billing"); got != "sample-billing-" {
		t.Errorf("got %q", got)
	}
	long := strings.Repeat("a", 60)
	if got := jobGenerateName(long); len(got)+generatedSuffix != maxJobName || !strings.HasSuffix(got, "-") {
		t.Errorf("generateName %q (%d chars): a generated name must fit the %d-character limit", got, len(got), maxJobName)
	}
}

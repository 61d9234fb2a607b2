package schedule

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func mustParse(t *testing.T, expr, tz string) *Schedule {
	t.Helper()
	s, err := Parse(expr, tz)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, tz, err)
	}
	return s
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		expr, tz string
		err      string
	}{
		{expr: "0 3 * * *"},
		{expr: "*/15 * * * 1-5", tz: "Asia/Seoul"},
		{expr: "@hourly"},
		{expr: "@daily", tz: "America/New_York"},
		{expr: "@monthly"},
		{expr: "0 3 * *", err: "expected exactly 5 fields"},
		{expr: "0 3 * * * *", err: "expected exactly 5 fields"},
		{expr: "61 3 * * *", err: "above maximum"},
		{expr: "@every 1h", err: "@every is not supported"},
		{expr: "CRON_TZ=UTC 0 3 * * *", err: "use schedule.timeZone"},
		{expr: "0 3 * * *", tz: "Mars/Olympus", err: "not a known IANA time zone"},
	} {
		_, err := Parse(tc.expr, tc.tz)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("Parse(%q, %q): %v", tc.expr, tc.tz, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Parse(%q, %q) = %v, want an error with %q", tc.expr, tc.tz, err, tc.err)
		}
	}
}

func TestDecide(t *testing.T) {
	created := ts("2026-12-01T00:00:00Z")
	minute := time.Minute
	for _, tc := range []struct {
		name  string
		expr  string
		tz    string
		in    Input
		start string // "" none
		hand  string // "" unchanged
		why   string
		next  string
		msg   string
	}{
		{name: "not yet due", expr: "0 3 * * *",
			in:   Input{Now: ts("2026-12-01T02:59:59Z"), Since: created},
			why:  costv1.ReasonWaitingForNext,
			next: "2026-12-01T03:00:00Z"},
		{name: "due on the second", expr: "0 3 * * *",
			in:    Input{Now: ts("2026-12-01T03:00:00Z"), Since: created},
			start: "2026-12-01T03:00:00Z", hand: "2026-12-01T03:00:00Z", why: costv1.ReasonRunStarted,
			next: "2026-12-02T03:00:00Z"},
		{name: "already handled", expr: "0 3 * * *",
			in:   Input{Now: ts("2026-12-01T03:00:30Z"), Since: ts("2026-12-01T03:00:00Z")},
			why:  costv1.ReasonWaitingForNext,
			next: "2026-12-02T03:00:00Z"},
		{name: "missed within the deadline", expr: "0 3 * * *",
			in:    Input{Now: ts("2026-12-01T03:00:50Z"), Since: created, StartingDeadline: ptr.To(minute)},
			start: "2026-12-01T03:00:00Z", hand: "2026-12-01T03:00:00Z", why: costv1.ReasonRunStarted,
			next: "2026-12-02T03:00:00Z"},
		{name: "missed past the deadline", expr: "0 3 * * *",
			in:   Input{Now: ts("2026-12-01T03:01:01Z"), Since: created, StartingDeadline: ptr.To(minute)},
			hand: "2026-12-01T03:00:00Z", why: costv1.ReasonMissedDeadline,
			next: "2026-12-02T03:00:00Z", msg: "missed by 1m1s"},
		{name: "a zero deadline starts only on time", expr: "* * * * *",
			in:   Input{Now: ts("2026-12-01T03:00:01Z"), Since: created, StartingDeadline: ptr.To(time.Duration(0))},
			hand: "2026-12-01T03:00:00Z", why: costv1.ReasonMissedDeadline, next: "2026-12-01T03:01:00Z"},
		{name: "long downtime starts only the latest", expr: "*/5 * * * *",
			in:    Input{Now: ts("2027-12-01T10:07:00Z"), Since: created},
			start: "2027-12-01T10:05:00Z", hand: "2027-12-01T10:05:00Z", why: costv1.ReasonRunStarted,
			next: "2027-12-01T10:10:00Z", msg: "earlier scheduled times since 2026-12-01T00:00:00Z were missed"},
		{name: "long downtime past the deadline", expr: "0 * * * *",
			in:   Input{Now: ts("2027-01-01T10:30:00Z"), Since: created, StartingDeadline: ptr.To(10 * minute)},
			hand: "2027-01-01T10:00:00Z", why: costv1.ReasonMissedDeadline, next: "2027-01-01T11:00:00Z"},
		{name: "Forbid skips while a run is active", expr: "@hourly",
			in:   Input{Now: ts("2026-12-01T05:00:10Z"), Since: ts("2026-12-01T04:00:00Z"), Active: []string{"billing-29935020"}},
			hand: "2026-12-01T05:00:00Z", why: costv1.ReasonSkippedActiveRun, next: "2026-12-01T06:00:00Z",
			msg: "Job billing-29935020 of this DataSource was still running (concurrencyPolicy Forbid)"},
		{name: "an unset policy is Forbid", expr: "@hourly",
			in:   Input{Now: ts("2026-12-01T05:00:10Z"), Since: ts("2026-12-01T04:00:00Z"), Active: []string{"by-hand"}, Policy: ""},
			hand: "2026-12-01T05:00:00Z", why: costv1.ReasonSkippedActiveRun, next: "2026-12-01T06:00:00Z"},
		{name: "Replace starts beside the active run", expr: "@hourly",
			in:    Input{Now: ts("2026-12-01T05:00:10Z"), Since: ts("2026-12-01T04:00:00Z"), Active: []string{"old"}, Policy: costv1.ConcurrencyReplace},
			start: "2026-12-01T05:00:00Z", hand: "2026-12-01T05:00:00Z", why: costv1.ReasonRunStarted, next: "2026-12-01T06:00:00Z",
			msg: "it replaces Job old (concurrencyPolicy Replace)"},
		{name: "Allow starts beside the active run", expr: "@hourly",
			in:    Input{Now: ts("2026-12-01T05:00:10Z"), Since: ts("2026-12-01T04:00:00Z"), Active: []string{"old"}, Policy: costv1.ConcurrencyAllow},
			start: "2026-12-01T05:00:00Z", hand: "2026-12-01T05:00:00Z", why: costv1.ReasonRunStarted, next: "2026-12-01T06:00:00Z"},
		{name: "suspended", expr: "@hourly",
			in:  Input{Now: ts("2026-12-01T05:00:10Z"), Since: created, Suspend: true},
			why: costv1.ReasonSuspended},
		{name: "resumed after a suspension starts the latest missed run", expr: "@hourly",
			in:    Input{Now: ts("2026-12-01T09:20:00Z"), Since: ts("2026-12-01T04:00:00Z")},
			start: "2026-12-01T09:00:00Z", hand: "2026-12-01T09:00:00Z", why: costv1.ReasonRunStarted, next: "2026-12-01T10:00:00Z"},
		{name: "read in its time zone", expr: "0 3 * * *", tz: "Asia/Seoul",
			in:    Input{Now: ts("2026-12-01T18:00:00Z"), Since: created},
			start: "2026-12-01T18:00:00Z", hand: "2026-12-01T18:00:00Z", why: costv1.ReasonRunStarted, next: "2026-12-02T18:00:00Z"},
		{name: "a yearly schedule a year later", expr: "@yearly",
			in:    Input{Now: ts("2028-06-01T00:00:00Z"), Since: created},
			start: "2028-01-01T00:00:00Z", hand: "2028-01-01T00:00:00Z", why: costv1.ReasonRunStarted, next: "2029-01-01T00:00:00Z",
			msg: "earlier scheduled times"},
		{name: "a date that never comes", expr: "0 0 30 2 *",
			in:  Input{Now: ts("2027-06-01T00:00:00Z"), Since: created},
			why: costv1.ReasonWaitingForNext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := mustParse(t, tc.expr, tc.tz).Decide(tc.in)
			check := func(what string, got time.Time, want string) {
				t.Helper()
				if want == "" && !got.IsZero() || want != "" && !got.Equal(ts(want)) {
					t.Errorf("%s = %v, want %q", what, got, want)
				}
			}
			check("Start", d.Start, tc.start)
			check("Handled", d.Handled, tc.hand)
			check("Next", d.Next, tc.next)
			if d.Reason != tc.why {
				t.Errorf("Reason = %q, want %q (%s)", d.Reason, tc.why, d.Message)
			}
			if !strings.Contains(d.Message, tc.msg) {
				t.Errorf("Message = %q, want it to hold %q", d.Message, tc.msg)
			}
		})
	}
}

// runsOn lists the scheduled times of one local day.
func runsOn(s *Schedule, day string) []string {
	d, err := time.ParseInLocation("2006-01-02", day, s.Location())
	if err != nil {
		panic(err)
	}
	var out []string
	for t := s.Next(d.Add(-time.Second)); t.Before(d.AddDate(0, 0, 1)); t = s.Next(t) {
		out = append(out, t.In(s.Location()).Format("15:04 MST"))
	}
	return out
}

// TestDaylightSavingTime pins what a schedule does across DST changes: CronJob's
// behaviour (the same cron library), which the README documents. A wall-clock
// time that does not exist on the spring-forward day is skipped that day; one
// that happens twice on the fall-back day runs twice. Neither loses data: the
// next run reads from lastSynchronizedAt.
func TestDaylightSavingTime(t *testing.T) {
	ny := "America/New_York"
	for _, tc := range []struct {
		expr, day string
		want      []string
	}{
		{"30 2 * * *", "2026-03-08", nil},
		{"30 2 * * *", "2026-03-09", []string{"02:30 EDT"}},
		{"30 1 * * *", "2026-11-01", []string{"01:30 EDT", "01:30 EST"}},
		{"30 3 * * *", "2026-11-01", []string{"03:30 EST"}},
		{"0 1-3 * * *", "2026-03-08", []string{"01:00 EST", "03:00 EDT"}},
	} {
		got := runsOn(mustParse(t, tc.expr, ny), tc.day)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%q on %s in %s: %v, want %v", tc.expr, tc.day, ny, got, tc.want)
		}
	}
	// Across the fall-back night a daily schedule in UTC is unaffected.
	if got := runsOn(mustParse(t, "30 1 * * *", ""), "2026-11-01"); len(got) != 1 {
		t.Errorf("UTC daily on 2026-11-01: %v", got)
	}
	// The decision at the fall-back: the second 01:30 is a new scheduled time.
	s := mustParse(t, "30 1 * * *", ny)
	d := s.Decide(Input{Now: ts("2026-11-01T06:31:00Z"), Since: ts("2026-11-01T05:30:00Z")})
	if !d.Start.Equal(ts("2026-11-01T06:30:00Z")) {
		t.Errorf("second 01:30 of the fall-back day: %+v", d)
	}
}

func TestMostRecentIsCheapAfterLongDowntime(t *testing.T) {
	s := mustParse(t, "* * * * *", "")
	n := 0
	counting := &Schedule{spec: countingSpec{s.spec, &n}, loc: s.loc}
	got, ok := counting.MostRecent(ts("2016-12-01T00:00:00Z"), ts("2026-12-01T10:07:30Z"))
	if !ok || !got.Equal(ts("2026-12-01T10:07:00Z")) {
		t.Fatalf("MostRecent = %v %v", got, ok)
	}
	if n > 10 {
		t.Errorf("MostRecent over ten years of a per-minute schedule took %d steps", n)
	}
}

type countingSpec struct {
	inner interface{ Next(time.Time) time.Time }
	n     *int
}

func (c countingSpec) Next(t time.Time) time.Time { *c.n++; return c.inner.Next(t) }

func TestPrune(t *testing.T) {
	at := func(m int) time.Time { return ts("2026-12-01T00:00:00Z").Add(time.Duration(m) * time.Minute) }
	history := []Run{
		{Name: "s1", Succeeded: true, FinishedAt: at(1)},
		{Name: "f1", FinishedAt: at(2)},
		{Name: "s2", Succeeded: true, FinishedAt: at(3)},
		{Name: "s3", Succeeded: true, FinishedAt: at(4)},
		{Name: "f2", FinishedAt: at(5)},
		{Name: "s4", Succeeded: true, FinishedAt: at(6)},
		{Name: "f3", FinishedAt: at(7)},
	}
	for _, tc := range []struct {
		succ, fail int
		want       string
	}{
		{3, 1, "f2,f1,s1"},
		{0, 0, "f3,s4,f2,s3,s2,f1,s1"},
		{10, 10, ""},
		{1, 2, "s3,s2,f1,s1"},
	} {
		got := strings.Join(Prune(history, tc.succ, tc.fail), ",")
		if got != tc.want {
			t.Errorf("Prune(%d, %d) = %q, want %q", tc.succ, tc.fail, got, tc.want)
		}
	}
}

func TestNames(t *testing.T) {
	at := ts("2026-12-01T03:00:00Z")
	if got := JobName("billing", at); got != "billing-29934900" {
		t.Errorf("JobName = %q", got)
	}
	long := strings.Repeat("a", 63)
	for _, n := range []string{JobName(long, at), SyncNowJobName(long, "x"), SyncNowJobName("billing", "2026-12-01")} {
		if len(n) > 52 {
			t.Errorf("%q is longer than a Job name may be (52)", n)
		}
	}
	if JobName(long, at) == JobName(long[:62]+"b", at) {
		t.Error("two long DataSource names give the same Job name")
	}
	if SyncNowJobName("billing", "1") == SyncNowJobName("billing", "2") {
		t.Error("two sync-now values give the same Job name")
	}
}

func TestStartFor(t *testing.T) {
	seoul, _ := time.LoadLocation("Asia/Seoul")
	at := ts("2026-12-31T20:00:00Z") // 2027-01-01 05:00 in Seoul
	for _, tc := range []struct {
		p    *costv1.StartPolicy
		loc  *time.Location
		want string
	}{
		{nil, time.UTC, ""},
		{&costv1.StartPolicy{LookbackMonths: ptr.To[int32](0)}, time.UTC, "2026-12"},
		{&costv1.StartPolicy{LookbackMonths: ptr.To[int32](1)}, seoul, "2026-12"},
		{&costv1.StartPolicy{LookbackMonths: ptr.To[int32](13)}, time.UTC, "2025-11"},
		{&costv1.StartPolicy{LookbackDays: ptr.To[int32](3)}, time.UTC, "2026-12-28"},
		{&costv1.StartPolicy{LookbackDays: ptr.To[int32](1)}, seoul, "2026-12-31"},
	} {
		if got := StartFor(tc.p, at, tc.loc); got != tc.want {
			t.Errorf("StartFor(%+v, %s) = %q, want %q", tc.p, tc.loc, got, tc.want)
		}
	}
}

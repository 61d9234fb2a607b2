// Package schedule decides what a DataSource's cron schedule does at a given
// moment: which scheduled run is due, which was missed, which finished Jobs of the
// schedule go. It is pure (the time is an input), as Kubernetes' CronJob controller
// keeps its own decision, so every case is a table test.
package schedule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	// Time zone names resolve in any image, with or without /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// parser reads the standard five fields and the @yearly … @hourly descriptors, as
// CronJob does.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedule is a parsed cron expression in its time zone.
type Schedule struct {
	spec cron.Schedule
	loc  *time.Location
}

// Parse reads a cron expression and an IANA time zone name ("" is UTC).
func Parse(expr, timeZone string) (*Schedule, error) {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@every") {
		return nil, fmt.Errorf("schedule.cron %q: @every is not supported; write it as a five-field expression", expr)
	}
	if strings.Contains(expr, "TZ=") {
		return nil, fmt.Errorf("schedule.cron %q must not set TZ= or CRON_TZ=: use schedule.timeZone", expr)
	}
	if timeZone == "" {
		timeZone = "UTC"
	}
	loc, err := time.LoadLocation(timeZone)
	if err != nil {
		return nil, fmt.Errorf("schedule.timeZone %q is not a known IANA time zone", timeZone)
	}
	spec, err := parser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("schedule.cron %q: %w", expr, err)
	}
	return &Schedule{spec: spec, loc: loc}, nil
}

// Location is the schedule's time zone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next is the first scheduled time after t (zero when there is none in five years).
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.spec.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// maxLookBack bounds how far back the latest missed time is searched.
const maxLookBack = 10 * 365 * 24 * time.Hour

// MostRecent is the latest scheduled time in (since, now]. It searches back from
// now in doubling windows, so a manager that was down for a year over a
// per-minute schedule finds it in a few steps instead of walking every minute.
func (s *Schedule) MostRecent(since, now time.Time) (time.Time, bool) {
	if !now.After(since) {
		return time.Time{}, false
	}
	for d := time.Minute; ; d *= 2 {
		from, clamped := now.Add(-d), false
		if !from.After(since) {
			from, clamped = since, true
		}
		var last time.Time
		for t := s.Next(from); !t.IsZero() && !t.After(now); t = s.Next(t) {
			last = t
		}
		if !last.IsZero() {
			return last, true
		}
		if clamped || d > maxLookBack {
			return time.Time{}, false
		}
	}
}

// Run is a Job of the DataSource as the decision sees it.
type Run struct {
	Name string
	// Succeeded is true for a Job that ended SUCCESS (History only).
	Succeeded bool
	// FinishedAt orders the history (History only).
	FinishedAt time.Time
}

// Input is what the decision is made from.
type Input struct {
	// Now is the current time (from the injected clock).
	Now time.Time
	// Since is where scheduled times start to count: the last scheduled time the
	// schedule acted on, or the DataSource's creation time.
	Since time.Time
	// StartingDeadline: a run missed by more than this is not started (nil: none).
	StartingDeadline *time.Duration
	Suspend          bool
	Policy           costv1.ConcurrencyPolicy
	// Active are the DataSource's unfinished Jobs, whoever created them.
	Active []string
}

// Decision is what the schedule does now.
type Decision struct {
	// Start is the scheduled time of the run to create now; zero for none.
	Start time.Time
	// Handled is what lastScheduleTime becomes (the run started, or skipped);
	// zero leaves it as it is.
	Handled time.Time
	// Reason and Message describe the decision (the Scheduled condition).
	Reason  string
	Message string
	// Next is the next scheduled time after Now; zero when suspended.
	Next time.Time
}

// Decide is the schedule's decision at in.Now.
func (s *Schedule) Decide(in Input) Decision {
	if in.Suspend {
		return Decision{Reason: costv1.ReasonSuspended, Message: "the schedule is suspended: no new runs start"}
	}
	d := Decision{Next: s.Next(in.Now)}
	latest, ok := s.MostRecent(in.Since, in.Now)
	if !ok {
		d.Reason, d.Message = costv1.ReasonWaitingForNext, "waiting for the next scheduled time"
		return d
	}
	d.Handled = latest
	at := latest.UTC().Format(time.RFC3339)
	missed := ""
	if _, earlier := s.MostRecent(in.Since, latest.Add(-time.Second)); earlier {
		missed = "; earlier scheduled times since " + in.Since.UTC().Format(time.RFC3339) + " were missed and are not run"
	}
	if in.StartingDeadline != nil && in.Now.Sub(latest) > *in.StartingDeadline {
		d.Reason = costv1.ReasonMissedDeadline
		d.Message = fmt.Sprintf("the run due at %s was missed by %s, more than startingDeadlineSeconds (%d)%s",
			at, in.Now.Sub(latest).Truncate(time.Second), int64(in.StartingDeadline.Seconds()), missed)
		return d
	}
	if len(in.Active) > 0 && in.Policy != costv1.ConcurrencyAllow && in.Policy != costv1.ConcurrencyReplace {
		d.Reason = costv1.ReasonSkippedActiveRun
		d.Message = fmt.Sprintf("the run due at %s was skipped: Job %s of this DataSource was still running (concurrencyPolicy Forbid)",
			at, strings.Join(in.Active, ", "))
		return d
	}
	d.Start = latest
	d.Reason = costv1.ReasonRunStarted
	d.Message = "started the run due at " + at + missed
	if len(in.Active) > 0 && in.Policy == costv1.ConcurrencyReplace {
		d.Message += "; it replaces Job " + strings.Join(in.Active, ", ") + " (concurrencyPolicy Replace)"
	}
	return d
}

// Prune names the finished Jobs of the schedule to delete: all but the newest
// `succeeded` successful ones and the newest `failed` others. The history holds
// finished Jobs only; a running Job is never pruned.
func Prune(history []Run, succeeded, failed int) []string {
	h := slices.Clone(history)
	slices.SortFunc(h, func(a, b Run) int {
		if c := b.FinishedAt.Compare(a.FinishedAt); c != 0 {
			return c
		}
		return strings.Compare(b.Name, a.Name)
	})
	var out []string
	for _, r := range h {
		keep := &failed
		if r.Succeeded {
			keep = &succeeded
		}
		if *keep > 0 {
			*keep--
			continue
		}
		out = append(out, r.Name)
	}
	return out
}

// maxPrefix keeps the names of the Jobs the schedule creates within a Job name's
// 52 characters: prefix "-sync-" 8 hex digits at most.
const maxPrefix = 52 - len("-sync-") - 8

// namePrefix is the DataSource's name, shortened with a digest when too long.
func namePrefix(dataSource string) string {
	if len(dataSource) <= maxPrefix {
		return dataSource
	}
	return strings.TrimRight(dataSource[:maxPrefix-9], "-.") + "-" + digest(dataSource)
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// JobName is the name of the run scheduled at t: the DataSource's name and the
// minutes since the epoch, as CronJob names its Jobs. The name is the lock: a
// second manager (or the same one after a restart) creating the same run gets
// AlreadyExists.
func JobName(dataSource string, t time.Time) string {
	return namePrefix(dataSource) + "-" + strconv.FormatInt(t.Unix()/60, 10)
}

// SyncNowJobName is the name of the run a sync-now request (the annotation's
// value) creates: one Job per distinct value.
func SyncNowJobName(dataSource, value string) string {
	return namePrefix(dataSource) + "-sync-" + digest(value)
}

// StartFor is spec.start of a run scheduled at t under the start policy; "" when
// the policy leaves it to the plugin.
func StartFor(p *costv1.StartPolicy, t time.Time, loc *time.Location) string {
	if p == nil {
		return ""
	}
	t = t.In(loc)
	switch {
	case p.LookbackMonths != nil:
		m := time.Date(t.Year(), t.Month()-time.Month(*p.LookbackMonths), 1, 0, 0, 0, 0, loc)
		return m.Format("2006-01")
	case p.LookbackDays != nil:
		d := time.Date(t.Year(), t.Month(), t.Day()-int(*p.LookbackDays), 0, 0, 0, 0, loc)
		return d.Format("2006-01-02")
	}
	return ""
}

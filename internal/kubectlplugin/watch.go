package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// redrawInterval is how often a terminal's progress bar is redrawn between changes
// of the Job, so that its rate and ETA follow the time.
const redrawInterval = time.Second

func (p *plugin) watchCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "watch JOB",
		Short: "Follow a run to its end; the exit code is its outcome",
		Long: `Follows a Job with a watch on it (no polling) and shows its progress: on a terminal a
live progress bar (tasks done/total, percent, rate, ETA, failed tasks, phase), else
one line each time the run's counts or phase change. When the run ends it prints a
summary and exits with its outcome:

  0  SUCCESS
  2  FAILURE
  3  TIMEOUT
  4  CANCELED
  1  the plugin could not follow the run (not found, deleted, connection lost)

A Job that already finished gives its summary and outcome at once.`,
		Example: `  kubectl costanalysis watch sample-billing-x7k2p

  # In a script: act on the outcome
  kubectl costanalysis watch "$JOB" > watch.log; echo "exit $?"`,
		Args: exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			j, err := getJob(cmd.Context(), c, ns, args[0])
			if err != nil {
				return err
			}
			return p.follow(cmd.Context(), c, j, p.Streams.Out)
		},
	}
}

// outcome is the exit error of a finished run: nil for SUCCESS, else its exit code
// with no message (the summary line has said it).
func outcome(s costv1.JobState) error {
	switch s {
	case costv1.JobSuccess:
		return nil
	case costv1.JobFailure:
		return &exitError{code: ExitFailure}
	case costv1.JobTimeout:
		return &exitError{code: ExitTimeout}
	case costv1.JobCanceled:
		return &exitError{code: ExitCanceled}
	}
	return &exitError{code: ExitError, msg: fmt.Sprintf("the run has not finished (status %q)", s)}
}

// follow shows a run's progress on out until it ends and returns its outcome. It
// watches the one Job from the resourceVersion it last saw; when the watch ends (the
// server closes watches now and then, or the version is too old) it reads the Job
// again and watches on.
func (p *plugin) follow(ctx context.Context, c client.WithWatch, j *costv1.Job, out io.Writer) error {
	d := &display{out: out, terminal: p.Terminal, clock: p.Clock}
	if j.Status.Status.Finished() {
		// Nothing to follow: the summary says it all.
		d.last = progressOf(j)
		d.finish()
		return outcome(j.Status.Status)
	}
	d.observe(j)
	var tick <-chan time.Time
	if ok, _ := p.Terminal(out); ok {
		t := p.Clock.NewTicker(redrawInterval)
		defer t.Stop()
		tick = t.C()
	}
	ns, name, rv := j.Namespace, j.Name, j.ResourceVersion
	for {
		w, err := c.Watch(ctx, &costv1.JobList{}, &client.ListOptions{
			Namespace:     ns,
			FieldSelector: fields.OneTermEqualSelector("metadata.name", name),
			Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true,
				TimeoutSeconds: ptr.To(int64(max(p.WatchTimeout/time.Second, 1)))},
		})
		if err != nil {
			d.interrupt()
			return fmt.Errorf("watching job %q: %w", name, err)
		}
		final, err := d.events(ctx, w, tick, &rv)
		w.Stop()
		switch {
		case err != nil:
			d.interrupt()
			return err
		case final != nil:
			d.finish()
			return outcome(final.Status.Status)
		}
		// The watch ended: read the Job again (it may have finished meanwhile) and
		// watch on from there.
		j, err := getJob(ctx, c, ns, name)
		if err != nil {
			d.interrupt()
			return err
		}
		d.observe(j)
		if j.Status.Status.Finished() {
			d.finish()
			return outcome(j.Status.Status)
		}
		rv = j.ResourceVersion
	}
}

// events shows the Job's changes from one watch until the run finishes (it returns
// the finished Job), the watch ends (nil, nil) or the context is done.
func (d *display) events(ctx context.Context, w watch.Interface, tick <-chan time.Time, rv *string) (*costv1.Job, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped following the run (it goes on): %w", context.Cause(ctx))
		case <-tick:
			d.draw()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return nil, nil
			}
			switch ev.Type {
			case watch.Error:
				// Typically 410 Gone: the version is too old; read the Job again.
				return nil, nil
			case watch.Deleted:
				return nil, errors.New("the job was deleted while it was being watched")
			}
			j, ok := ev.Object.(*costv1.Job)
			if !ok {
				continue
			}
			*rv = j.ResourceVersion
			if ev.Type == watch.Bookmark {
				continue
			}
			d.observe(j)
			if j.Status.Status.Finished() {
				return j, nil
			}
		}
	}
}

// display renders a run's progress: a redrawn bar on a terminal, lines elsewhere.
type display struct {
	out      io.Writer
	terminal func(io.Writer) (bool, int)
	clock    clock.PassiveClock
	meter    rateMeter
	last     progress
	lastLine string // lineKey of the last plain line
	drawn    bool   // a bar is on the terminal's current line
}

func (d *display) observe(j *costv1.Job) {
	now := d.clock.Now()
	d.last = progressOf(j)
	if !d.last.StartedAt.IsZero() && d.last.StartedAt.Before(now) {
		d.meter.seed(d.last.StartedAt)
	}
	d.meter.observe(now, d.last.Done)
	d.draw()
}

func (d *display) draw() {
	now := d.clock.Now()
	f := newFrame(d.last, &d.meter, now)
	if ok, width := d.terminal(d.out); ok {
		// Carriage return, clear the line, draw: the bar stays on one line.
		fmt.Fprint(d.out, "\r\x1b[2K"+renderBar(f, width-1))
		d.drawn = true
		return
	}
	if key := lineKey(d.last); key != d.lastLine {
		d.lastLine = key
		fmt.Fprintln(d.out, renderLine(f, now))
	}
}

// finish ends the bar's line and prints the summary.
func (d *display) finish() {
	d.interrupt()
	fmt.Fprintln(d.out, summary(d.last))
}

// interrupt ends the bar's line, so that what follows starts on a line of its own.
func (d *display) interrupt() {
	if d.drawn {
		fmt.Fprintln(d.out)
		d.drawn = false
	}
}

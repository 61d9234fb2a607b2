package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// The kubectl plugin's exit codes (internal/kubectlplugin), as a script sees them.
const (
	pluginExitSuccess  = 0
	pluginExitError    = 1
	pluginExitCanceled = 4
)

var (
	pluginOnce sync.Once
	pluginDir  string
	pluginErr  error
)

// kubectlPluginPath builds kubectl-costanalysis into a directory of its own, which
// the tests put on kubectl's PATH: kubectl finds it there as `kubectl costanalysis`.
func kubectlPluginPath(t *testing.T) string {
	t.Helper()
	pluginOnce.Do(func() {
		// In the suite's log directory, which its teardown removes.
		if pluginDir, pluginErr = os.MkdirTemp(env.LogDir, "kubectl-plugin-"); pluginErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(pluginDir, "kubectl-costanalysis"), "./cmd/kubectl-costanalysis")
		cmd.Dir = env.Root
		if b, err := cmd.CombinedOutput(); err != nil {
			pluginErr = fmt.Errorf("go build ./cmd/kubectl-costanalysis: %w\n%s", err, b)
		}
	})
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return pluginDir
}

// pluginCmd is `kubectl costanalysis --kubeconfig K --namespace NS ARGS...`, with the
// plugin on PATH (kubectl finds a plugin only when its name comes before any flag,
// and hands it every argument after the name).
func (k *kube) pluginCmd(ctx context.Context, args ...string) *exec.Cmd {
	dir := kubectlPluginPath(k.t)
	cmd := exec.CommandContext(ctx, env.Kubectl.Bin, append([]string{"costanalysis", "--kubeconfig", env.Kubectl.Kubeconfig,
		"--namespace", k.ns}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd
}

// plugin runs `kubectl costanalysis ARGS...` and returns its output and exit code.
func (k *kube) plugin(args ...string) (stdout, stderr string, code int) {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := k.pluginCmd(ctx, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		k.t.Fatalf("kubectl costanalysis %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// terminalRun is a command running on a pseudo-terminal.
type terminalRun struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

// onTerminal starts `kubectl costanalysis ARGS...` on a pseudo-terminal of 120
// columns, recording all it draws.
func (k *kube) onTerminal(ctx context.Context, args ...string) *terminalRun {
	k.t.Helper()
	r := &terminalRun{cmd: k.pluginCmd(ctx, args...), done: make(chan struct{})}
	tty, err := pty.StartWithSize(r.cmd, &pty.Winsize{Rows: 30, Cols: 120})
	if err != nil {
		k.t.Fatalf("starting on a pseudo-terminal: %v", err)
	}
	go func() {
		defer close(r.done)
		defer func() { _ = tty.Close() }()
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			r.mu.Lock()
			r.out.Write(buf[:n])
			r.mu.Unlock()
			if err != nil { // EIO once the command has exited
				return
			}
		}
	}()
	return r
}

func (r *terminalRun) output() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The terminal turns "\n" into "\r\n".
	return strings.ReplaceAll(r.out.String(), "\r\n", "\n")
}

// wait waits for the command's exit and returns its exit code and what it drew.
func (r *terminalRun) wait(t *testing.T) (int, string) {
	t.Helper()
	err := r.cmd.Wait()
	<-r.done
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), r.output()
	case err != nil:
		t.Fatalf("waiting for the command on the terminal: %v\n%s", err, r.output())
	}
	return 0, r.output()
}

// frame is one drawing of the progress bar: "[====>   ]  50%  4/8 tasks ... PHASE".
var frameRE = regexp.MustCompile(`^\[[=> ]+\]\s+(\d+)%  (\d+)/(\d+) tasks  (\S+) tasks/(s|min)  ETA (\S+)  (\d+) failed  (.+)$`)

type barFrame struct {
	line                string
	done, total, failed int
	rate, eta, phase    string
}

// frames splits what a watch drew on the terminal into its progress bar frames
// (each starts with a carriage return and a clear-line) and the lines after the last.
func frames(t *testing.T, drawn string) (fs []barFrame, after string) {
	t.Helper()
	parts := strings.Split(drawn, "\r\x1b[2K")
	last := parts[len(parts)-1]
	if i := strings.Index(last, "\n"); i >= 0 {
		parts[len(parts)-1], after = last[:i], last[i+1:]
	}
	for _, p := range parts[1:] {
		m := frameRE.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("not a progress bar frame: %q", p)
			continue
		}
		if len(p) >= 120 {
			t.Errorf("frame of %d columns on a terminal of 120: %q", len(p), p)
		}
		n := func(s string) int { v, _ := strconv.Atoi(s); return v }
		fs = append(fs, barFrame{line: p, done: n(m[2]), total: n(m[3]), failed: n(m[7]), rate: m[4], eta: m[6], phase: m[8]})
	}
	return fs, after
}

// The sample DataSource, synced with `kubectl costanalysis sync` and followed with
// `watch` on a pseudo-terminal: the progress bar's frames count the tasks up to
// SUCCESS, the watch exits 0, and logs, metering and stat read the finished run.
func TestKubectlPluginSyncAndWatch(t *testing.T) {
	k := setup(t)
	requireRealNode(t)
	t.Parallel()
	kubectlPluginPath(t)

	// The sample's Secret and DataSource (not its Job: this test makes its own run).
	rendered := k.kubectl("kustomize", filepath.Join(env.Root, "config", "samples"))
	rendered = strings.ReplaceAll(rendered, "endpoint: 10.201.0.1:50051", "endpoint: "+env.PluginAddr)
	var docs []string
	for _, d := range strings.Split(rendered, "\n---\n") {
		if !strings.Contains(d, "\nkind: Job\n") {
			docs = append(docs, d)
		}
	}
	k.apply(strings.Join(docs, "\n---\n"))

	out, errOut, code := k.plugin("sync", "sample-billing", "--start", "2026-09")
	name := strings.TrimSpace(out)
	if code != pluginExitSuccess || !strings.HasPrefix(name, "sample-billing-") {
		t.Fatalf("sync: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("sync created Job %s", name)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code, drawn := k.onTerminal(ctx, "watch", name).wait(t)
	t.Logf("watch drew:\n%q", drawn)
	if code != pluginExitSuccess {
		t.Fatalf("watch exited %d, want %d (SUCCESS)", code, pluginExitSuccess)
	}

	months := 0
	for m := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC); !m.After(time.Now().UTC()); m = m.AddDate(0, 1, 0) {
		months++
	}
	n := 2 * months // the sample plugin plans one task per account and month

	fs, after := frames(t, drawn)
	if len(fs) < 3 {
		t.Fatalf("%d progress bar frames, want the bar redrawn as the run went on", len(fs))
	}
	midRun, prevDone := false, 0
	for _, f := range fs {
		if f.done < prevDone {
			t.Errorf("tasks done went back from %d to %d: %q", prevDone, f.done, f.line)
		}
		prevDone = f.done
		if f.phase == "IN_PROGRESS" && f.total == n && f.done > 0 && f.done < n {
			midRun = true
			if f.rate == "--" || f.eta == "--" {
				t.Errorf("a frame with %d of %d tasks done has no rate or ETA: %q", f.done, n, f.line)
			}
		}
	}
	if !midRun {
		t.Errorf("no frame showed the run between its first and last task (want 0 < done < %d while IN_PROGRESS)", n)
	}
	if last := fs[len(fs)-1]; last.phase != "SUCCESS" || last.done != n || last.total != n || last.failed != 0 {
		t.Errorf("last frame %q, want SUCCESS with %d/%d tasks", last.line, n, n)
	}
	wantSummary := "SUCCESS: " + strconv.Itoa(n) + "/" + strconv.Itoa(n) + " tasks finished, 0 failed, " + strconv.Itoa(24*n) + " records, in "
	if !strings.HasPrefix(after, wantSummary) {
		t.Errorf("after the bar: %q, want the summary %q...", after, wantSummary)
	}
	if j := k.job(name); j.Status.Status != "SUCCESS" {
		t.Errorf("Job status %q after watch exited 0", j.Status.Status)
	}

	// The finished run's task pods' logs, one task's without a prefix.
	out, errOut, code = k.plugin("logs", name, "--task", "0")
	if code != 0 || strings.TrimSpace(out) == "" || strings.HasPrefix(out, "[task") {
		t.Errorf("logs --task 0: exit %d, stderr %q, stdout %q: want the collector's log, unprefixed", code, errOut, out)
	}
	out, _, code = k.plugin("logs", name)
	for i := range n {
		if !strings.Contains(out, "[task "+strconv.Itoa(i)+"] ") {
			t.Errorf("logs: no line of task %d (exit %d):\n%s", i, code, out)
		}
	}

	out, errOut, code = k.plugin("metering", name, "-o", "json")
	var metering struct {
		ProductInfoList []struct {
			ResourceType     string  `json:"resource_type"`
			ResourceSpecCode string  `json:"resource_spec_code"`
			UsageValue       float64 `json:"usage_value"`
		} `json:"product_info_list"`
	}
	if err := json.Unmarshal([]byte(out), &metering); err != nil || code != 0 || len(metering.ProductInfoList) != 2 ||
		metering.ProductInfoList[0].ResourceSpecCode != "cpu-100m.memory-64Mi" || metering.ProductInfoList[1].UsageValue <= 0 {
		t.Errorf("metering -o json: exit %d, %v, stderr %q:\n%s", code, err, errOut, out)
	}

	out, _, code = k.plugin("stat", "--data-source", "sample-billing", "-o", "json")
	var stat struct {
		DataSources []struct {
			DataSource string         `json:"dataSource"`
			ByStatus   map[string]int `json:"byStatus"`
			LastJob    string         `json:"lastJob"`
		} `json:"dataSources"`
	}
	if err := json.Unmarshal([]byte(out), &stat); err != nil || code != 0 || len(stat.DataSources) != 1 ||
		stat.DataSources[0].ByStatus["SUCCESS"] != 1 || stat.DataSources[0].LastJob != name {
		t.Errorf("stat -o json: exit %d, %v:\n%s", code, err, out)
	}
}

// `kubectl costanalysis cancel` on a running Job: the watch following it on a
// terminal exits with the CANCELED code, and a second cancel is refused.
func TestKubectlPluginCancel(t *testing.T) {
	k := setup(t)
	t.Parallel()
	kubectlPluginPath(t)
	k.createDataSource("billing", source{options: map[string]any{"tasks": 4}, pods: map[string]string{fakeDuration: "1h"}})

	out, errOut, code := k.plugin("sync", "billing")
	name := strings.TrimSpace(out)
	if code != 0 || name == "" {
		t.Fatalf("sync: exit %d, %q %q", code, out, errOut)
	}
	k.wait("cajob/"+name, "{.status.status}", "IN_PROGRESS", time.Minute)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	watch := k.onTerminal(ctx, "watch", name)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(watch.output(), "0/4 tasks") {
		if time.Now().After(deadline) {
			t.Fatalf("the watch never drew the planned run:\n%q", watch.output())
		}
		time.Sleep(100 * time.Millisecond)
	}

	out, errOut, code = k.plugin("cancel", name)
	if code != 0 || out != "job.cost-analysis.costops.dev/"+name+" cancel requested\n" {
		t.Errorf("cancel: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, drawn := watch.wait(t)
	if code != pluginExitCanceled {
		t.Errorf("watch exited %d, want %d (CANCELED); it drew:\n%q", code, pluginExitCanceled, drawn)
	}
	fs, after := frames(t, drawn)
	if len(fs) == 0 || fs[len(fs)-1].phase != "CANCELED" || !strings.HasPrefix(after, "CANCELED: 4/4 tasks finished, 0 failed, 0 records") ||
		!strings.Contains(after, "ERROR_JOB_CANCELED") {
		t.Errorf("the watch's end: frames %v, then %q; want a CANCELED frame and summary", fs, after)
	}

	_, errOut, code = k.plugin("cancel", name)
	if code != pluginExitError || !strings.Contains(errOut, `job "`+name+`" already finished (CANCELED): there is nothing to cancel`) {
		t.Errorf("second cancel: exit %d, stderr %q; want it refused", code, errOut)
	}
	// watch of the finished run: its outcome at once, as plain lines off a terminal.
	out, _, code = k.plugin("watch", name)
	if code != pluginExitCanceled || !strings.HasPrefix(out, "CANCELED: 4/4 tasks finished") {
		t.Errorf("watch of the canceled Job off a terminal: exit %d, %q", code, out)
	}
}

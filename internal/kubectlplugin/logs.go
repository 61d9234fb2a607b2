package kubectlplugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// taskPod is a pod of one of a run's batch Jobs, with the index of its task.
type taskPod struct {
	pod   corev1.Pod
	index int32 // -1 when it cannot be told
	// attempt is the pod's place among its task's pods, from 1, in creation order.
	attempt int
}

func (p *plugin) logsCommand() *cobra.Command {
	var (
		task   int32
		follow bool
		tail   int64
	)
	cmd := &cobra.Command{
		Use:   "logs JOB [--task N]",
		Short: "Print the logs of a run's task pods",
		Long: `Prints the logs of the collector container of the Job's task pods: the pods of the
Indexed batch Jobs that run its JobTasks (label cost-analysis.costops.dev/job=JOB).
With several tasks each line starts with "[task N] ", N being the task's index in
the plugin's plan (spec.index of its JobTask: the batch Job's first task index plus
the pod's completion index); a retried task's pods are told apart as
"[task N attempt K] ". --task N keeps one task's pods.

Finished batch Jobs, and their pods, are deleted after the DataSource's
jobDefaults.ttlSecondsAfterFinished: logs are there until then.`,
		Example: `  kubectl costanalysis logs sample-billing-x7k2p
  kubectl costanalysis logs sample-billing-x7k2p --task 3
  kubectl costanalysis logs sample-billing-x7k2p -f`,
		Args: exactArgs("JOB"),
		RunE: func(cmd *cobra.Command, args []string) error {
			taskSet := cmd.Flags().Changed("task")
			if taskSet && task < 0 {
				return fmt.Errorf("--task %d: a task index is 0 or more", task)
			}
			c, ns, err := p.target()
			if err != nil {
				return err
			}
			cs, err := p.clientset()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			j, err := getJob(ctx, c, ns, args[0])
			if err != nil {
				return err
			}
			pods, err := taskPods(ctx, c, j)
			if err != nil {
				return err
			}
			if taskSet {
				pods = slices.DeleteFunc(pods, func(tp taskPod) bool { return tp.index != task })
				if len(pods) == 0 {
					return fmt.Errorf("job %q has no pod for task %d (of %d tasks): it has not started, or its batch Job was removed", j.Name, task, j.Status.TotalTasks)
				}
			}
			if len(pods) == 0 {
				return fmt.Errorf("job %q has no task pods: none has started yet, or their batch Jobs were removed after finishing", j.Name)
			}
			opts := &corev1.PodLogOptions{Container: taskpod.ContainerName, Follow: follow}
			if tail >= 0 {
				opts.TailLines = &tail
			}
			return printLogs(ctx, cs, pods, opts, p.Streams.Out, p.Streams.ErrOut)
		},
	}
	cmd.Flags().Int32Var(&task, "task", 0, "Only the pods of the task with this index (spec.index of its JobTask).")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Follow the logs of the pods there are now until they end.")
	cmd.Flags().Int64Var(&tail, "tail", -1, "Lines of each pod's log to show from its end; all when -1.")
	return cmd
}

// taskPods lists the pods of a Job's batch Jobs, ordered by task index and attempt.
// A pod's task index is podTaskIndex's; a pod of the per-task engine that has no
// index annotation is matched to its JobTask by the job-task label.
func taskPods(ctx context.Context, c client.Client, j *costv1.Job) ([]taskPod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(j.Namespace), client.MatchingLabels{costv1.LabelJob: j.Name}); err != nil {
		return nil, fmt.Errorf("listing the pods of job %q: %w", j.Name, err)
	}
	var tasks map[string]int32 // JobTask name to index, read only when needed
	out := make([]taskPod, 0, len(pods.Items))
	for _, pod := range pods.Items {
		tp := taskPod{pod: pod, index: -1}
		if i, ok := podTaskIndex(pod.Annotations); ok {
			tp.index = i
		} else if name := pod.Labels[costv1.LabelJobTask]; name != "" {
			if tasks == nil {
				var l costv1.JobTaskList
				if err := c.List(ctx, &l, client.InNamespace(j.Namespace), client.MatchingLabels{costv1.LabelJob: j.Name}); err != nil {
					return nil, fmt.Errorf("listing the tasks of job %q: %w", j.Name, err)
				}
				tasks = make(map[string]int32, len(l.Items))
				for _, t := range l.Items {
					tasks[t.Name] = t.Spec.Index
				}
			}
			if i, ok := tasks[name]; ok {
				tp.index = i
			}
		}
		out = append(out, tp)
	}
	slices.SortFunc(out, func(a, b taskPod) int {
		if a.index != b.index {
			return int(a.index - b.index)
		}
		if c := a.pod.CreationTimestamp.Compare(b.pod.CreationTimestamp.Time); c != 0 {
			return c
		}
		return compareStrings(a.pod.Name, b.pod.Name)
	})
	for i := range out {
		out[i].attempt = 1
		if i > 0 && out[i-1].index == out[i].index {
			out[i].attempt = out[i-1].attempt + 1
		}
	}
	return out, nil
}

// podTaskIndex is the plan index of a pod's task: its batch Job's first task index
// plus its completion index (a pod of an Indexed batch Job), or the task-index
// annotation of a pod of the per-task engine.
func podTaskIndex(annotations map[string]string) (int32, bool) {
	if i, ok := taskpod.PodTaskIndex(annotations, costv1.AnnotationFirstTaskIndex); ok {
		return i, true
	}
	if v, err := strconv.ParseInt(annotations[costv1.AnnotationTaskIndex], 10, 32); err == nil && v >= 0 {
		return int32(v), true
	}
	return 0, false
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// logPrefixes is the prefix of each pod's lines: none for a single pod, the task for
// several tasks, the attempt for a task with several pods.
func logPrefixes(pods []taskPod) []string {
	tasks := map[int32]int{}
	for _, tp := range pods {
		tasks[tp.index]++
	}
	prefixes := make([]string, len(pods))
	if len(pods) <= 1 {
		return prefixes
	}
	for i, tp := range pods {
		task := "task ?"
		if tp.index >= 0 {
			task = fmt.Sprintf("task %d", tp.index)
		}
		if tasks[tp.index] > 1 {
			task += fmt.Sprintf(" attempt %d", tp.attempt)
		}
		prefixes[i] = "[" + task + "] "
	}
	return prefixes
}

// printLogs writes the pods' logs, one pod after another, or all at once when
// following. A pod whose log cannot be read (not started yet, its node gone) is
// reported on errOut and makes the command fail once the others are printed.
func printLogs(ctx context.Context, cs kubernetes.Interface, pods []taskPod, opts *corev1.PodLogOptions, out, errOut io.Writer) error {
	prefixes := logPrefixes(pods)
	w := &lineWriter{out: out}
	var (
		mu     sync.Mutex
		failed []string
	)
	read := func(i int) {
		tp := pods[i]
		o := opts.DeepCopy()
		if !hasContainer(&tp.pod, o.Container) && len(tp.pod.Spec.Containers) > 0 {
			o.Container = tp.pod.Spec.Containers[0].Name
		}
		err := streamLog(ctx, cs, &tp.pod, o, prefixes[i], w)
		if err != nil {
			mu.Lock()
			failed = append(failed, tp.pod.Name)
			mu.Unlock()
			w.line(errOut, fmt.Sprintf("%spod %s: %v", prefixes[i], tp.pod.Name, err))
		}
	}
	if opts.Follow {
		var wg sync.WaitGroup
		for i := range pods {
			wg.Go(func() { read(i) })
		}
		wg.Wait()
	} else {
		for i := range pods {
			read(i)
		}
	}
	if len(failed) > 0 {
		slices.Sort(failed)
		return fmt.Errorf("could not read the logs of %d of %d pods: %v", len(failed), len(pods), failed)
	}
	return nil
}

func hasContainer(pod *corev1.Pod, name string) bool {
	return slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
}

func streamLog(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, opts *corev1.PodLogOptions, prefix string, w *lineWriter) error {
	rc, err := cs.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts).Stream(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		w.line(w.out, prefix+sc.Text())
	}
	if err := sc.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// lineWriter writes whole lines, so that followed pods' lines never mix.
type lineWriter struct {
	mu  sync.Mutex
	out io.Writer
}

func (w *lineWriter) line(to io.Writer, s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintln(to, s)
}

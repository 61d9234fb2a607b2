package spaceone

import (
	"context"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/indexes"
	"github.com/costops/cost-analysis-operator/internal/query"
)

// The SpaceONE cost-analysis v1 Job and JobTask calls. Each reads its parameters,
// checks the caller's access to the namespace it touches, then answers from the
// manager's cache.

// ListResult is JobsInfo and JobTasksInfo: a page of records and the number that
// matched before paging.
type ListResult struct {
	Results    any `json:"results"`
	TotalCount int `json:"total_count"`
}

var (
	jobRunOptions = query.RunOptions{
		KeywordFields: []string{"job_id", "data_source_id", "status", "error_code"},
		MinimalFields: []string{"job_id", "status", "total_tasks", "remained_tasks", "data_source_id", "created_at", "finished_at"},
	}
	jobTaskRunOptions = query.RunOptions{
		KeywordFields: []string{"job_task_id", "job_id", "data_source_id", "status", "error_code"},
		MinimalFields: []string{"job_task_id", "status", "created_count", "job_id", "created_at", "started_at", "finished_at"},
	}
)

func (s *Server) runOptions(base query.RunOptions) query.RunOptions {
	base.Now = s.opts.Now
	return base
}

// getJob: Job get (GetJobRequest → JobInfo).
func (s *Server) getJob(ctx context.Context, c *call) (any, error) {
	var j costv1.Job
	return s.getOne(ctx, c, ResourceJobs, "job_id", &j, func() recorder { info := NewJobInfo(&j); return &info })
}

// cancelJob: Job cancel (JobRequest → JobInfo). It sets spec.cancel; the Job
// controller ends the run.
func (s *Server) cancelJob(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	id, err := c.params.str("job_id", true)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "patch", Resource: ResourceJobs, Namespace: ns, Name: id}); err != nil {
		return nil, err
	}
	var j costv1.Job
	if err := s.fetch(ctx, ns, "job_id", id, &j); err != nil {
		return nil, err
	}
	if j.Status.Status != costv1.JobInProgress {
		return nil, errJobState(jobStatus(&j))
	}
	patched := &costv1.Job{}
	patched.Namespace, patched.Name = ns, id
	if err := s.writer.Patch(ctx, patched, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"cancel":true}}`))); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNotFound("job_id", id)
		}
		return nil, err
	}
	return NewJobInfo(patched), nil
}

// jobs lists the namespace's Jobs that pass the JobQuery's filter fields, in the
// cache's order.
func (s *Server) jobs(ctx context.Context, ns, jobID, status, dataSourceID string) ([]*costv1.Job, error) {
	var list costv1.JobList
	return listCached(ctx, s, s.jobStore, &list, func() []costv1.Job { return list.Items },
		ns, indexes.JobDataSource, dataSourceID, func(j *costv1.Job) bool {
			return (jobID == "" || j.Name == jobID) && (status == "" || jobStatus(j) == status) &&
				(dataSourceID == "" || j.Spec.DataSourceRef.Name == dataSourceID)
		})
}

// listJobs: Job list (JobQuery → JobsInfo).
func (s *Server) listJobs(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	jobID, err := c.params.str("job_id", false)
	if err != nil {
		return nil, err
	}
	status, err := c.params.enum("status", JobStatuses)
	if err != nil {
		return nil, err
	}
	dataSourceID, err := c.params.str("data_source_id", false)
	if err != nil {
		return nil, err
	}
	q, err := c.params.query()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "list", Resource: ResourceJobs, Namespace: ns}); err != nil {
		return nil, err
	}
	jobs, err := s.jobs(ctx, ns, jobID, status, dataSourceID)
	if err != nil {
		return nil, err
	}
	return answerList(jobs, compareJobs, func(j *costv1.Job) any { info := NewJobInfo(j); return &info },
		jobTable, q, s.runOptions(jobRunOptions))
}

// statJobs: Job stat (JobStatQuery → Struct).
func (s *Server) statJobs(ctx context.Context, c *call) (any, error) {
	return s.stat(ctx, c, ResourceJobs, func(ns string) (*query.Table, error) {
		jobs, err := s.jobs(ctx, ns, "", "", "")
		return jobTable(jobs), err
	}, jobRunOptions)
}

// getJobTask: JobTask get (GetJobTaskRequest → JobTaskInfo).
func (s *Server) getJobTask(ctx context.Context, c *call) (any, error) {
	var t costv1.JobTask
	return s.getOne(ctx, c, ResourceJobTasks, "job_task_id", &t, func() recorder { info := NewJobTaskInfo(&t); return &info })
}

// jobTasks lists the namespace's JobTasks that pass the JobTaskQuery's filter fields,
// in the cache's order.
func (s *Server) jobTasks(ctx context.Context, ns, taskID, status, jobID, dataSourceID string) ([]*costv1.JobTask, error) {
	var list costv1.JobTaskList
	return listCached(ctx, s, s.taskStore, &list, func() []costv1.JobTask { return list.Items },
		ns, indexes.JobTaskJob, jobID, func(t *costv1.JobTask) bool {
			return (taskID == "" || t.Name == taskID) && (status == "" || jobTaskStatus(t) == status) &&
				(jobID == "" || t.Spec.JobRef.Name == jobID) && (dataSourceID == "" || t.Spec.DataSourceRef.Name == dataSourceID)
		})
}

// listJobTasks: JobTask list (JobTaskQuery → JobTasksInfo).
func (s *Server) listJobTasks(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	taskID, err := c.params.str("job_task_id", false)
	if err != nil {
		return nil, err
	}
	status, err := c.params.enum("status", JobTaskStatuses)
	if err != nil {
		return nil, err
	}
	jobID, err := c.params.str("job_id", false)
	if err != nil {
		return nil, err
	}
	dataSourceID, err := c.params.str("data_source_id", false)
	if err != nil {
		return nil, err
	}
	q, err := c.params.query()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "list", Resource: ResourceJobTasks, Namespace: ns}); err != nil {
		return nil, err
	}
	tasks, err := s.jobTasks(ctx, ns, taskID, status, jobID, dataSourceID)
	if err != nil {
		return nil, err
	}
	return answerList(tasks, compareJobTasks, func(t *costv1.JobTask) any { info := NewJobTaskInfo(t); return &info },
		jobTaskTable, q, s.runOptions(jobTaskRunOptions))
}

// statJobTasks: JobTask stat (JobTaskStatQuery → Struct).
func (s *Server) statJobTasks(ctx context.Context, c *call) (any, error) {
	return s.stat(ctx, c, ResourceJobTasks, func(ns string) (*query.Table, error) {
		tasks, err := s.jobTasks(ctx, ns, "", "", "", "")
		return jobTaskTable(tasks), err
	}, jobTaskRunOptions)
}

// recorder is a typed info (JobInfo, JobTaskInfo) that `only` can trim.
type recorder interface{ Record() map[string]any }

// getOne answers a get call: the object named by idKey in the domain, as its info,
// trimmed to `only` when asked.
func (s *Server) getOne(ctx context.Context, c *call, resource, idKey string, obj client.Object, info func() recorder) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	id, err := c.params.str(idKey, true)
	if err != nil {
		return nil, err
	}
	only, err := c.params.only()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "get", Resource: resource, Namespace: ns, Name: id}); err != nil {
		return nil, err
	}
	if err := s.fetch(ctx, ns, idKey, id, obj); err != nil {
		return nil, err
	}
	r := info()
	if len(only) > 0 {
		return trim(r.Record(), only), nil
	}
	return r, nil
}

// fetch reads one object from the cache; a missing one is SpaceONE's ERROR_NOT_FOUND
// on idKey.
func (s *Server) fetch(ctx context.Context, ns, idKey, id string, obj client.Object) error {
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return errNotFound(idKey, id)
		}
		return err
	}
	return nil
}

// stat answers a stat call over the domain's table of one resource.
func (s *Server) stat(ctx context.Context, c *call, resource string, table func(ns string) (*query.Table, error), opts query.RunOptions) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	q, err := c.params.statisticsQuery()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "list", Resource: resource, Namespace: ns}); err != nil {
		return nil, err
	}
	t, err := table(ns)
	if err != nil {
		return nil, err
	}
	return runStat(t, q, s.runOptions(opts))
}

// listCached returns the domain's objects that keep accepts, read in place from the
// informer's store (inplace.go) or else through the cache's List into list, whose
// items returns. When value is set, only the objects whose field index holds it are
// read.
func listCached[T any](ctx context.Context, s *Server, st Store, list client.ObjectList, items func() []T,
	ns, field, value string, keep func(*T) bool) ([]*T, error) {
	if value == "" {
		field = ""
	}
	if objs, ok := fromStore(st, ns, field, value); ok {
		out := make([]*T, 0, len(objs))
		for _, o := range objs {
			if t, isT := o.(*T); isT && keep(t) {
				out = append(out, t)
			}
		}
		return out, nil
	}
	opts := []client.ListOption{client.InNamespace(ns), client.UnsafeDisableDeepCopy}
	if field != "" {
		opts = append(opts, client.MatchingFields{field: value})
	}
	if err := s.reader.List(ctx, list, opts...); err != nil {
		return nil, err
	}
	all := items()
	out := make([]*T, 0, len(all))
	for i := range all {
		if keep(&all[i]) {
			out = append(out, &all[i])
		}
	}
	return out, nil
}

// answerList answers a list call: without a Query, every object in SpaceONE's order
// (newest first); with one, the Query's page over the objects' table.
func answerList[T any](objs []*T, compare func(a, b *T) int, info func(*T) any, table func([]*T) *query.Table,
	q *query.Query, opts query.RunOptions) (*ListResult, error) {
	if q == nil {
		slices.SortFunc(objs, compare)
		infos := make([]any, len(objs))
		for i, o := range objs {
			infos[i] = info(o)
		}
		return &ListResult{Results: infos, TotalCount: len(infos)}, nil
	}
	return runList(table(objs), func(i int) any { return info(objs[i]) }, q, opts)
}

// runList applies a Query to a table of records. Each untrimmed result is answered
// with its typed info (whose JSON keeps SpaceONE's field order), built for the page
// alone.
func runList(t *query.Table, info func(i int) any, q *query.Query, opts query.RunOptions) (*ListResult, error) {
	res, err := q.RunTable(t, opts)
	if err != nil {
		return nil, queryError(err)
	}
	results := make([]any, len(res.Rows))
	for k, row := range res.Rows {
		if res.Trimmed != nil {
			results[k] = res.Trimmed[k]
		} else {
			results[k] = info(row)
		}
	}
	return &ListResult{Results: results, TotalCount: res.Total}, nil
}

// runStat applies a StatisticsQuery to a table of records.
func runStat(t *query.Table, q *query.StatisticsQuery, opts query.RunOptions) (map[string]any, error) {
	out, err := q.RunTable(t, opts)
	if err != nil {
		return nil, queryError(err)
	}
	return out, nil
}

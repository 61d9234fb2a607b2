package api

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
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	id, err := c.params.str("job_id", true)
	if err != nil {
		return nil, err
	}
	only, err := c.params.only()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "get", Resource: ResourceJobs, Namespace: ns, Name: id}); err != nil {
		return nil, err
	}
	var j costv1.Job
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, &j); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNotFound("job_id", id)
		}
		return nil, err
	}
	info := NewJobInfo(&j)
	if len(only) > 0 {
		return trim(info.Record(), only), nil
	}
	return info, nil
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
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, &j); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNotFound("job_id", id)
		}
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
	keep := func(j *costv1.Job) bool {
		return (jobID == "" || j.Name == jobID) && (status == "" || jobStatus(j) == status) &&
			(dataSourceID == "" || j.Spec.DataSourceRef.Name == dataSourceID)
	}
	field := ""
	if dataSourceID != "" {
		field = indexes.JobDataSource
	}
	if objs, ok := fromStore(s.jobStore, ns, field, dataSourceID); ok {
		jobs := make([]*costv1.Job, 0, len(objs))
		for _, o := range objs {
			if j, isJob := o.(*costv1.Job); isJob && keep(j) {
				jobs = append(jobs, j)
			}
		}
		return jobs, nil
	}
	opts := []client.ListOption{client.InNamespace(ns), client.UnsafeDisableDeepCopy}
	if field != "" {
		opts = append(opts, client.MatchingFields{field: dataSourceID})
	}
	var list costv1.JobList
	if err := s.reader.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	jobs := make([]*costv1.Job, 0, len(list.Items))
	for i := range list.Items {
		if j := &list.Items[i]; keep(j) {
			jobs = append(jobs, j)
		}
	}
	return jobs, nil
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
	if q == nil {
		slices.SortFunc(jobs, compareJobs)
		infos := make([]JobInfo, len(jobs))
		for i, j := range jobs {
			infos[i] = NewJobInfo(j)
		}
		return &ListResult{Results: infos, TotalCount: len(infos)}, nil
	}
	return runList(jobTable(jobs), func(i int) any {
		info := NewJobInfo(jobs[i])
		return &info
	}, q, s.runOptions(jobRunOptions))
}

// statJobs: Job stat (JobStatQuery → Struct).
func (s *Server) statJobs(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	q, err := c.params.statisticsQuery()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "list", Resource: ResourceJobs, Namespace: ns}); err != nil {
		return nil, err
	}
	jobs, err := s.jobs(ctx, ns, "", "", "")
	if err != nil {
		return nil, err
	}
	return runStat(jobTable(jobs), q, s.runOptions(jobRunOptions))
}

// getJobTask: JobTask get (GetJobTaskRequest → JobTaskInfo).
func (s *Server) getJobTask(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	id, err := c.params.str("job_task_id", true)
	if err != nil {
		return nil, err
	}
	only, err := c.params.only()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "get", Resource: ResourceJobTasks, Namespace: ns, Name: id}); err != nil {
		return nil, err
	}
	var t costv1.JobTask
	if err := s.reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: id}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, errNotFound("job_task_id", id)
		}
		return nil, err
	}
	info := NewJobTaskInfo(&t)
	if len(only) > 0 {
		return trim(info.Record(), only), nil
	}
	return info, nil
}

// jobTasks lists the namespace's JobTasks that pass the JobTaskQuery's filter fields,
// in the cache's order.
func (s *Server) jobTasks(ctx context.Context, ns, taskID, status, jobID, dataSourceID string) ([]*costv1.JobTask, error) {
	keep := func(t *costv1.JobTask) bool {
		return (taskID == "" || t.Name == taskID) && (status == "" || jobTaskStatus(t) == status) &&
			(jobID == "" || t.Spec.JobRef.Name == jobID) && (dataSourceID == "" || t.Spec.DataSourceRef.Name == dataSourceID)
	}
	field := ""
	if jobID != "" {
		field = indexes.JobTaskJob
	}
	if objs, ok := fromStore(s.taskStore, ns, field, jobID); ok {
		tasks := make([]*costv1.JobTask, 0, len(objs))
		for _, o := range objs {
			if t, isTask := o.(*costv1.JobTask); isTask && keep(t) {
				tasks = append(tasks, t)
			}
		}
		return tasks, nil
	}
	opts := []client.ListOption{client.InNamespace(ns), client.UnsafeDisableDeepCopy}
	if field != "" {
		opts = append(opts, client.MatchingFields{field: jobID})
	}
	var list costv1.JobTaskList
	if err := s.reader.List(ctx, &list, opts...); err != nil {
		return nil, err
	}
	tasks := make([]*costv1.JobTask, 0, len(list.Items))
	for i := range list.Items {
		if t := &list.Items[i]; keep(t) {
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
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
	if q == nil {
		slices.SortFunc(tasks, compareJobTasks)
		infos := make([]JobTaskInfo, len(tasks))
		for i, t := range tasks {
			infos[i] = NewJobTaskInfo(t)
		}
		return &ListResult{Results: infos, TotalCount: len(infos)}, nil
	}
	return runList(jobTaskTable(tasks), func(i int) any {
		info := NewJobTaskInfo(tasks[i])
		return &info
	}, q, s.runOptions(jobTaskRunOptions))
}

// statJobTasks: JobTask stat (JobTaskStatQuery → Struct).
func (s *Server) statJobTasks(ctx context.Context, c *call) (any, error) {
	ns, err := c.params.domainID()
	if err != nil {
		return nil, err
	}
	q, err := c.params.statisticsQuery()
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, c, Access{Verb: "list", Resource: ResourceJobTasks, Namespace: ns}); err != nil {
		return nil, err
	}
	tasks, err := s.jobTasks(ctx, ns, "", "", "", "")
	if err != nil {
		return nil, err
	}
	return runStat(jobTaskTable(tasks), q, s.runOptions(jobTaskRunOptions))
}

// runList applies a Query to a table of records. Each untrimmed result is answered
// with its typed info (whose JSON keeps the seed's field order), built for the page
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

package spaceone

import (
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/query"
)

// JobInfo is SpaceONE cost_analysis.v1 JobInfo: exactly SpaceONE's fields, in its
// order. Unset strings and times are "" (proto3's default).
type JobInfo struct {
	JobID         string `json:"job_id"`
	Status        string `json:"status"`
	ErrorCode     string `json:"error_code"`
	ErrorMessage  string `json:"error_message"`
	TotalTasks    int32  `json:"total_tasks"`
	RemainedTasks int32  `json:"remained_tasks"`
	DataSourceID  string `json:"data_source_id"`
	DomainID      string `json:"domain_id"`
	CreatedAt     string `json:"created_at"`
	UpdatedAt     string `json:"updated_at"`
	FinishedAt    string `json:"finished_at"`
	LastChangedAt string `json:"last_changed_at"`
}

// JobTaskInfo is SpaceONE cost_analysis.v1 JobTaskInfo: exactly SpaceONE's fields, in
// its order.
type JobTaskInfo struct {
	JobTaskID    string          `json:"job_task_id"`
	Status       string          `json:"status"`
	Options      json.RawMessage `json:"options"`
	CreatedCount int64           `json:"created_count"`
	ErrorCode    string          `json:"error_code"`
	ErrorMessage string          `json:"error_message"`
	JobID        string          `json:"job_id"`
	DataSourceID string          `json:"data_source_id"`
	DomainID     string          `json:"domain_id"`
	CreatedAt    string          `json:"created_at"`
	StartedAt    string          `json:"started_at"`
	UpdatedAt    string          `json:"updated_at"`
	FinishedAt   string          `json:"finished_at"`
}

// JobStatusNone is how JobInfo reports a Job the operator has not picked up yet: the
// status enum's zero value in SpaceONE's API.
const JobStatusNone = "SCOPE_NONE"

// JobStatuses and JobTaskStatuses are the values the status filters accept.
var (
	JobStatuses = []string{JobStatusNone, string(costv1.JobInProgress), string(costv1.JobSuccess),
		string(costv1.JobFailure), string(costv1.JobTimeout), string(costv1.JobCanceled)}
	JobTaskStatuses = []string{string(costv1.TaskPending), string(costv1.TaskInProgress), string(costv1.TaskSuccess),
		string(costv1.TaskFailure), string(costv1.TaskCanceled), string(costv1.TaskTimeout)}
)

// timeLayout is ISO 8601 in UTC, at the seconds Kubernetes keeps.
const timeLayout = "2006-01-02T15:04:05Z"

func isoTime(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	u := t.UTC()
	y, mo, d := u.Date()
	if y < 0 || y > 9999 {
		return u.Format(timeLayout)
	}
	// Formatting by hand is several times faster than time.Format, which dominated
	// list calls over large namespaces.
	h, mi, sec := u.Clock()
	b := [20]byte{0, 0, 0, 0, '-', 0, 0, '-', 0, 0, 'T', 0, 0, ':', 0, 0, ':', 0, 0, 'Z'}
	put := func(at, v, width int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	put(5, int(mo), 2)
	put(8, d, 2)
	put(11, h, 2)
	put(14, mi, 2)
	put(17, sec, 2)
	return string(b[:])
}

// isoTimeValue is the datetime isoTime(t) stands for, when it is an ISO 8601
// datetime the query engine can take without parsing it (query.Column.Time).
func isoTimeValue(t *metav1.Time) (time.Time, bool) {
	if t == nil || t.IsZero() {
		return time.Time{}, false
	}
	u := t.UTC()
	if y := u.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return u.Truncate(time.Second), true
}

func jobStatus(j *costv1.Job) string {
	if j.Status.Status == "" {
		return JobStatusNone
	}
	return string(j.Status.Status)
}

func jobTaskStatus(t *costv1.JobTask) string {
	if t.Status.Status == "" {
		return string(costv1.TaskPending)
	}
	return string(t.Status.Status)
}

// NewJobInfo describes a Job as SpaceONE's JobInfo.
func NewJobInfo(j *costv1.Job) JobInfo {
	created := j.Status.CreatedAt
	if created == nil {
		created = &j.CreationTimestamp
	}
	return JobInfo{
		JobID:         j.Name,
		Status:        jobStatus(j),
		ErrorCode:     j.Status.ErrorCode,
		ErrorMessage:  j.Status.ErrorMessage,
		TotalTasks:    j.Status.TotalTasks,
		RemainedTasks: j.Status.RemainedTasks,
		DataSourceID:  j.Spec.DataSourceRef.Name,
		DomainID:      j.Namespace,
		CreatedAt:     isoTime(created),
		UpdatedAt:     isoTime(j.Status.UpdatedAt),
		FinishedAt:    isoTime(j.Status.FinishedAt),
		LastChangedAt: isoTime(j.Status.LastChangedAt),
	}
}

// NewJobTaskInfo describes a JobTask as SpaceONE's JobTaskInfo; options is its
// spec.taskOptions.
func NewJobTaskInfo(t *costv1.JobTask) JobTaskInfo {
	return JobTaskInfo{
		JobTaskID:    t.Name,
		Status:       jobTaskStatus(t),
		Options:      taskOptions(t),
		CreatedCount: t.Status.CreatedCount,
		ErrorCode:    t.Status.ErrorCode,
		ErrorMessage: t.Status.ErrorMessage,
		JobID:        t.Spec.JobRef.Name,
		DataSourceID: t.Spec.DataSourceRef.Name,
		DomainID:     t.Namespace,
		CreatedAt:    isoTime(&t.CreationTimestamp),
		StartedAt:    isoTime(t.Status.StartedAt),
		UpdatedAt:    isoTime(t.Status.UpdatedAt),
		FinishedAt:   isoTime(t.Status.FinishedAt),
	}
}

// Record is the JobInfo as the query engine sees it: the map encoding/json would
// decode its JSON into.
func (i *JobInfo) Record() map[string]any {
	return map[string]any{
		"job_id":          i.JobID,
		"status":          i.Status,
		"error_code":      i.ErrorCode,
		"error_message":   i.ErrorMessage,
		"total_tasks":     float64(i.TotalTasks),
		"remained_tasks":  float64(i.RemainedTasks),
		"data_source_id":  i.DataSourceID,
		"domain_id":       i.DomainID,
		"created_at":      i.CreatedAt,
		"updated_at":      i.UpdatedAt,
		"finished_at":     i.FinishedAt,
		"last_changed_at": i.LastChangedAt,
	}
}

// taskOptions is a JobTask's options in JobTaskInfo: its spec.taskOptions, or {}
// when they are not JSON.
func taskOptions(t *costv1.JobTask) json.RawMessage {
	options := json.RawMessage(t.Spec.TaskOptions.Raw)
	if len(options) == 0 || !json.Valid(options) {
		options = json.RawMessage(`{}`)
	}
	return options
}

// optionsValue is a JobTaskInfo's options as the query engine sees them.
func optionsValue(options json.RawMessage) any {
	var v any = map[string]any{}
	if len(options) > 2 {
		var o any
		if json.Unmarshal(options, &o) == nil {
			v = o
		}
	}
	return v
}

// Record is the JobTaskInfo as the query engine sees it.
func (i *JobTaskInfo) Record() map[string]any {
	return map[string]any{
		"job_task_id":    i.JobTaskID,
		"status":         i.Status,
		"options":        optionsValue(i.Options),
		"created_count":  float64(i.CreatedCount),
		"error_code":     i.ErrorCode,
		"error_message":  i.ErrorMessage,
		"job_id":         i.JobID,
		"data_source_id": i.DataSourceID,
		"domain_id":      i.DomainID,
		"created_at":     i.CreatedAt,
		"started_at":     i.StartedAt,
		"updated_at":     i.UpdatedAt,
		"finished_at":    i.FinishedAt,
	}
}

// compareJobs is the order of Job records: newest first, as SpaceONE's models do
// (-created_at), then by name.
func compareJobs(a, b *costv1.Job) int {
	if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
		return c
	}
	switch {
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// compareJobTasks is the order of JobTask records: newest first, then by Job, index
// and name.
func compareJobTasks(a, b *costv1.JobTask) int {
	if c := b.CreationTimestamp.Compare(a.CreationTimestamp.Time); c != 0 {
		return c
	}
	if a.Spec.JobRef.Name != b.Spec.JobRef.Name {
		if a.Spec.JobRef.Name < b.Spec.JobRef.Name {
			return -1
		}
		return 1
	}
	switch {
	case a.Spec.Index < b.Spec.Index:
		return -1
	case a.Spec.Index > b.Spec.Index:
		return 1
	case a.Name < b.Name:
		return -1
	case a.Name > b.Name:
		return 1
	}
	return 0
}

// The query engine reads Jobs and JobTasks as tables whose columns are the keys of
// their records (JobInfo.Record, JobTaskInfo.Record), so that a list or stat call
// over a large namespace builds a record only for what it returns or for keys that
// are not columns, instead of one per object.

func stringColumn[T any](objs []*T, get func(*T) string) query.Column {
	return query.Column{String: func(i int) string { return get(objs[i]) }}
}

func timeColumn[T any](objs []*T, get func(*T) *metav1.Time) query.Column {
	return query.Column{
		String: func(i int) string { return isoTime(get(objs[i])) },
		Time:   func(i int) (time.Time, bool) { return isoTimeValue(get(objs[i])) },
	}
}

// jobTable is the query engine's view of jobs, in compareJobs order.
func jobTable(jobs []*costv1.Job) *query.Table {
	return &query.Table{
		Len: len(jobs),
		Columns: map[string]query.Column{
			"job_id":         stringColumn(jobs, func(j *costv1.Job) string { return j.Name }),
			"status":         stringColumn(jobs, jobStatus),
			"error_code":     stringColumn(jobs, func(j *costv1.Job) string { return j.Status.ErrorCode }),
			"error_message":  stringColumn(jobs, func(j *costv1.Job) string { return j.Status.ErrorMessage }),
			"total_tasks":    {Number: func(i int) float64 { return float64(jobs[i].Status.TotalTasks) }},
			"remained_tasks": {Number: func(i int) float64 { return float64(jobs[i].Status.RemainedTasks) }},
			"data_source_id": stringColumn(jobs, func(j *costv1.Job) string { return j.Spec.DataSourceRef.Name }),
			"domain_id":      stringColumn(jobs, func(j *costv1.Job) string { return j.Namespace }),
			"created_at": timeColumn(jobs, func(j *costv1.Job) *metav1.Time {
				if j.Status.CreatedAt != nil {
					return j.Status.CreatedAt
				}
				return &j.CreationTimestamp
			}),
			"updated_at":      timeColumn(jobs, func(j *costv1.Job) *metav1.Time { return j.Status.UpdatedAt }),
			"finished_at":     timeColumn(jobs, func(j *costv1.Job) *metav1.Time { return j.Status.FinishedAt }),
			"last_changed_at": timeColumn(jobs, func(j *costv1.Job) *metav1.Time { return j.Status.LastChangedAt }),
		},
		Record: func(i int) map[string]any {
			info := NewJobInfo(jobs[i])
			return info.Record()
		},
		Compare: func(i, j int) int { return compareJobs(jobs[i], jobs[j]) },
	}
}

// jobTaskTable is the query engine's view of tasks, in compareJobTasks order.
func jobTaskTable(tasks []*costv1.JobTask) *query.Table {
	return &query.Table{
		Len: len(tasks),
		Columns: map[string]query.Column{
			"job_task_id":    stringColumn(tasks, func(t *costv1.JobTask) string { return t.Name }),
			"status":         stringColumn(tasks, jobTaskStatus),
			"options":        {Value: func(i int) any { return optionsValue(taskOptions(tasks[i])) }},
			"created_count":  {Number: func(i int) float64 { return float64(tasks[i].Status.CreatedCount) }},
			"error_code":     stringColumn(tasks, func(t *costv1.JobTask) string { return t.Status.ErrorCode }),
			"error_message":  stringColumn(tasks, func(t *costv1.JobTask) string { return t.Status.ErrorMessage }),
			"job_id":         stringColumn(tasks, func(t *costv1.JobTask) string { return t.Spec.JobRef.Name }),
			"data_source_id": stringColumn(tasks, func(t *costv1.JobTask) string { return t.Spec.DataSourceRef.Name }),
			"domain_id":      stringColumn(tasks, func(t *costv1.JobTask) string { return t.Namespace }),
			"created_at":     timeColumn(tasks, func(t *costv1.JobTask) *metav1.Time { return &t.CreationTimestamp }),
			"started_at":     timeColumn(tasks, func(t *costv1.JobTask) *metav1.Time { return t.Status.StartedAt }),
			"updated_at":     timeColumn(tasks, func(t *costv1.JobTask) *metav1.Time { return t.Status.UpdatedAt }),
			"finished_at":    timeColumn(tasks, func(t *costv1.JobTask) *metav1.Time { return t.Status.FinishedAt }),
		},
		Record: func(i int) map[string]any {
			info := NewJobTaskInfo(tasks[i])
			return info.Record()
		},
		Compare: func(i, j int) int { return compareJobTasks(tasks[i], tasks[j]) },
	}
}

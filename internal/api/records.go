package api

import (
	"encoding/json"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// JobInfo is SpaceONE cost_analysis.v1 JobInfo: exactly the seed's fields, in its
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

// JobTaskInfo is SpaceONE cost_analysis.v1 JobTaskInfo: exactly the seed's fields, in
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
// status enum's zero value in the seed.
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
	options := json.RawMessage(t.Spec.TaskOptions.Raw)
	if len(options) == 0 || !json.Valid(options) {
		options = json.RawMessage(`{}`)
	}
	return JobTaskInfo{
		JobTaskID:    t.Name,
		Status:       jobTaskStatus(t),
		Options:      options,
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

// Record is the JobTaskInfo as the query engine sees it.
func (i *JobTaskInfo) Record() map[string]any {
	var options any = map[string]any{}
	if len(i.Options) > 2 {
		var o any
		if json.Unmarshal(i.Options, &o) == nil {
			options = o
		}
	}
	return map[string]any{
		"job_task_id":    i.JobTaskID,
		"status":         i.Status,
		"options":        options,
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

// creationTime orders records newest first, as SpaceONE's models do (-created_at).
func creationTime(m metav1.Object) time.Time { return m.GetCreationTimestamp().Time }

package controllers

import (
	"time"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// RunTimeout is a run's effective timeout (the Job's, else its DataSource's default,
// else the operator's); the metrics read it to count runs past their deadline.
func RunTimeout(job *costv1.Job, ds *costv1.DataSource) time.Duration {
	return effectiveSettings(job, ds).Timeout
}

// storeOperation is the metrics' name of what closing a run that ended st does in
// its store (a store that cannot be opened fails that operation).
func storeOperation(st costv1.JobState) string {
	if st == costv1.JobSuccess {
		return "commit"
	}
	return "rollback"
}

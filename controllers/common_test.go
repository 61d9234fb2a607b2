package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func TestEffectiveSettings(t *testing.T) {
	p := func(i int32) *int32 { return &i }
	ds := &costv1.DataSource{Spec: costv1.DataSourceSpec{JobDefaults: costv1.JobDefaults{
		Timeout: &metav1.Duration{Duration: time.Hour}, Parallelism: p(4), TaskRetryLimit: p(2), FailurePolicy: costv1.FailurePolicyContinue}}}
	job := &costv1.Job{}
	if s := effectiveSettings(job, nil); s.Timeout != DefaultJobTimeout || s.Parallelism != DefaultParallelism || s.Policy != costv1.FailurePolicyFail {
		t.Fatalf("defaults: %+v", s)
	}
	if s := effectiveSettings(job, ds); s.Timeout != time.Hour || s.Parallelism != 4 || s.Retries != 2 || s.Policy != costv1.FailurePolicyContinue {
		t.Fatalf("DataSource defaults: %+v", s)
	}
	job.Spec.Parallelism = p(9)
	job.Spec.FailurePolicy = costv1.FailurePolicyFail
	if s := effectiveSettings(job, ds); s.Parallelism != 9 || s.Policy != costv1.FailurePolicyFail || s.Timeout != time.Hour {
		t.Fatalf("Job overrides: %+v", s)
	}
}

func TestQueueName(t *testing.T) {
	ds := &costv1.DataSource{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{costv1.LabelQueueName: "ds-queue"}}}
	job := &costv1.Job{}
	if q := queueName(job, nil); q != "" {
		t.Fatalf("no label anywhere: %q", q)
	}
	if q := queueName(job, ds); q != "ds-queue" {
		t.Fatalf("the DataSource's queue: %q", q)
	}
	job.Labels = map[string]string{costv1.LabelQueueName: "job-queue"}
	if q := queueName(job, ds); q != "job-queue" {
		t.Fatalf("the Job's label wins: %q", q)
	}
}

package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// This file holds the Job controller's status write: when it writes, and what it
// remembers of its own writes.

// writeStatus patches the status when it changed, and remembers the new version.
func (r *JobReconciler) writeStatus(ctx context.Context, s *jobScope) error {
	now := metaNow(s.now)
	if !stampUpdated(&s.orig.Status, &s.job.Status, s.job.Generation, now) {
		return nil
	}
	if err := r.client.Status().Patch(ctx, s.job, client.MergeFrom(s.orig)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	r.written.wrote(s.job, s.now)
	s.orig = s.job.DeepCopy()
	return nil
}

// holdCounts keeps a running Job's status as it is when the only change is in the
// task counts and the last write was less than countsInterval ago; the Job comes
// back when the interval ends. A Job of many tasks is thus written about once a
// second while it runs, not once per task event.
func (r *JobReconciler) holdCounts(s *jobScope) (time.Duration, bool) {
	at, ok := r.written.last(s.job)
	if !ok {
		return 0, false
	}
	wait := r.countsInterval - s.now.Sub(at)
	if wait <= 0 || !countsOnlyChange(&s.orig.Status, &s.job.Status) {
		return 0, false
	}
	s.job.Status = *s.orig.Status.DeepCopy()
	return wait, true
}

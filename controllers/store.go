package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/store"
)

// Stores is how the controllers reach the cost stores: the open databases, and
// the operator's default store (the manager's --default-store-secret), used by
// DataSources that name none.
type Stores struct {
	Registry *store.Registry
	// Default is the Secret (key "dsn") of the default store; zero: none.
	Default types.NamespacedName
}

// storeTarget is the store a DataSource writes to.
type storeTarget struct {
	DSN string
	// SecretName is the DataSource's own store Secret (in its namespace); empty
	// for the default store, whose Secret lives in the operator's namespace.
	SecretName string
	Default    bool
}

// storeError is why a DataSource has no usable store.
type storeError struct {
	Reason string // a DataSource condition reason
	Code   string // the error code of a Job that cannot run for it
	Err    error
}

func (e *storeError) Error() string { return e.Err.Error() }

// resolveStore finds the store of ds: its spec.store.secretRef, else the
// default store, else none (a storeError with ReasonStoreNotConfigured).
// Secrets are read through reader, the API reader: never cached.
func resolveStore(ctx context.Context, reader client.Reader, ds *costv1.DataSource, stores *Stores) (storeTarget, *storeError) {
	if st := ds.Spec.Store; st != nil && st.SecretRef != nil {
		dsn, err := readDSN(ctx, reader, types.NamespacedName{Namespace: ds.Namespace, Name: st.SecretRef.Name})
		if err != nil {
			return storeTarget{}, err
		}
		return storeTarget{DSN: dsn, SecretName: st.SecretRef.Name}, nil
	}
	if stores == nil || stores.Default.Name == "" {
		return storeTarget{}, &storeError{Reason: costv1.ReasonStoreNotConfigured, Code: costv1.ErrorStoreNotConfigured,
			Err: errors.New("the DataSource has no spec.store.secretRef and the operator has no default store (--default-store-secret)")}
	}
	dsn, err := readDSN(ctx, reader, stores.Default)
	if err != nil {
		err.Err = fmt.Errorf("the operator's default store: %w", err.Err)
		return storeTarget{}, err
	}
	return storeTarget{DSN: dsn, Default: true}, nil
}

// readDSN reads the "dsn" key of a store Secret.
func readDSN(ctx context.Context, reader client.Reader, key types.NamespacedName) (string, *storeError) {
	sec := &corev1.Secret{}
	if err := reader.Get(ctx, key, sec); err != nil {
		if apierrors.IsNotFound(err) {
			return "", &storeError{Reason: costv1.ReasonSecretNotFound, Code: costv1.ErrorSecretNotFound,
				Err: fmt.Errorf("store secret %s not found", key)}
		}
		return "", &storeError{Reason: costv1.ReasonStoreUnavailable, Code: costv1.ErrorStoreUnavailable,
			Err: fmt.Errorf("reading store secret %s: %w", key, err)}
	}
	dsn := strings.TrimSpace(string(sec.Data[costv1.StoreDSNKey]))
	if dsn == "" {
		return "", &storeError{Reason: costv1.ReasonInvalidSpec, Code: costv1.ErrorStoreNotConfigured,
			Err: fmt.Errorf("store secret %s has no %q key", key, costv1.StoreDSNKey)}
	}
	return dsn, nil
}

// StoreSecretName is the name of a Job's own copy of the default store's Secret.
func StoreSecretName(job string) string {
	const suffix = "-store"
	if len(job)+len(suffix) <= 253 {
		return job + suffix
	}
	sum := sha256.Sum256([]byte(job))
	return job[:253-len(suffix)-9] + "-" + hex.EncodeToString(sum[:])[:8] + suffix
}

// ensureStoreSecret gives a Job that uses the default store a Secret of its own
// in its namespace (task pods can only read Secrets of their namespace), owned by
// the Job so that it goes with it.
func ensureStoreSecret(ctx context.Context, c client.Client, reader client.Reader, job *costv1.Job, dsn string) error {
	name := StoreSecretName(job.Name)
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: job.Namespace, Name: name,
			Labels:          map[string]string{costv1.LabelJob: job.Name},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(job, costv1.GroupVersion.WithKind("Job"))},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{costv1.StoreDSNKey: []byte(dsn)},
	}
	err := c.Create(ctx, want)
	if err == nil || !apierrors.IsAlreadyExists(err) {
		return err
	}
	got := &corev1.Secret{}
	if err := reader.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
		return err
	}
	if !metav1.IsControlledBy(got, job) {
		return fmt.Errorf("a Secret %s/%s exists and is not this Job's: the run cannot give its tasks the default store", job.Namespace, name)
	}
	if string(got.Data[costv1.StoreDSNKey]) == dsn {
		return nil
	}
	got.Data = want.Data
	return c.Update(ctx, got)
}

// storeWindows are a run's windows in the store's terms: the job-level changed
// windows and every task's task_changed window. Plugin dates are months in
// practice; a date or a time is taken as its month.
func storeWindows(job []costv1.ChangedWindow, tasks []*costv1.JobTask) ([]store.Window, error) {
	out := make([]store.Window, 0, len(job)+len(tasks))
	add := func(w costv1.ChangedWindow, where string) error {
		sw := store.Window{Start: pluginMonth(w.Start), End: pluginMonth(w.End)}
		if w.Filter != nil && len(w.Filter.Raw) > 0 {
			if err := json.Unmarshal(w.Filter.Raw, &sw.Filter); err != nil {
				return fmt.Errorf("%s: the filter is not an object: %w", where, err)
			}
		}
		out = append(out, sw)
		return nil
	}
	for i, w := range job {
		if err := add(w, fmt.Sprintf("changed window %d", i)); err != nil {
			return nil, err
		}
	}
	for _, t := range tasks {
		if t.Spec.TaskChanged != nil {
			if err := add(*t.Spec.TaskChanged, "the task_changed window of "+t.Name); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// pluginMonth is the month (YYYY-MM) of a plugin's date; what cannot be read is
// returned as it is, for the store to refuse with its reason.
func pluginMonth(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || len(s) == 7 {
		return s
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.Format("2006-01")
		}
	}
	return s
}

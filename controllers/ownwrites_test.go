package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

func TestOwnWrites(t *testing.T) {
	var w ownWrites
	job := func(uid, rv string) *costv1.Job {
		return &costv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "run", UID: types.UID("u" + uid), ResourceVersion: rv}}
	}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if w.behind(job("1", "5")) {
		t.Fatal("behind a write never made")
	}
	w.wrote(job("1", "10"), at)
	if !w.behind(job("1", "9")) || w.behind(job("1", "10")) || w.behind(job("1", "11")) {
		t.Fatal("an older copy is behind our write; the same or a newer one is not")
	}
	if w.behind(job("2", "9")) {
		t.Fatal("an object of the same name with another UID is not ours")
	}
	if got, ok := w.last(job("1", "10")); !ok || !got.Equal(at) {
		t.Fatalf("last %v %v", got, ok)
	}
	if _, ok := w.last(job("2", "10")); ok {
		t.Fatal("last write of another object of the same name")
	}
	if !w.isLast(job("1", "10")) || w.isLast(job("1", "11")) || w.isLast(job("1", "9")) || w.isLast(job("2", "10")) {
		t.Fatal("only the copy our write returned is our last write")
	}
	w.forget(types.NamespacedName{Namespace: "ns", Name: "run"})
	if w.behind(job("1", "9")) {
		t.Fatal("behind a forgotten write")
	}
}

package controllers

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/costops/cost-analysis-operator/internal/scheme"
)

func TestSecretPollerFindsTheDataSourcesWhoseSecretsChanged(t *testing.T) {
	ctx := context.Background()
	creds := types.NamespacedName{Namespace: "team", Name: "creds"}
	missing := types.NamespacedName{Namespace: "team", Name: "later"}
	c := fake.NewClientBuilder().WithScheme(scheme.Scheme).WithObjects(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: creds.Namespace, Name: creds.Name}}).Build()

	// What a check reads through the recording reader is what the poller compares.
	rec := &recordingReader{Reader: c, seen: secretVersions{}}
	if err := rec.Get(ctx, creds, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
	if err := rec.Get(ctx, missing, &corev1.Secret{}); err == nil {
		t.Fatal("a missing Secret was found")
	}
	if rec.seen[creds] == "" || rec.seen[missing] != "" || len(rec.seen) != 2 {
		t.Fatalf("recorded %v", rec.seen)
	}

	p := newSecretPoller(c, 0)
	unchanged := types.NamespacedName{Namespace: "team", Name: "unchanged"}
	usesCreds := types.NamespacedName{Namespace: "team", Name: "uses-creds"}
	usesLater := types.NamespacedName{Namespace: "team", Name: "uses-later"}
	p.remember(unchanged, secretVersions{creds: rec.seen[creds]})
	p.remember(usesCreds, secretVersions{creds: rec.seen[creds]})
	p.remember(usesLater, secretVersions{missing: ""})
	if got := p.changed(ctx); len(got) != 0 {
		t.Fatalf("nothing changed, yet %v", got)
	}

	sec := &corev1.Secret{}
	if err := c.Get(ctx, creds, sec); err != nil {
		t.Fatal(err)
	}
	sec.Data = map[string][]byte{"api_key": []byte("rotated")}
	if err := c.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	p.forget(unchanged)
	if got := p.changed(ctx); !slices.Equal(got, []types.NamespacedName{usesCreds}) {
		t.Fatalf("after an update of creds: %v, want [%v]", got, usesCreds)
	}

	p.remember(usesCreds, secretVersions{creds: sec.ResourceVersion})
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: missing.Namespace, Name: missing.Name}}); err != nil {
		t.Fatal(err)
	}
	if got := p.changed(ctx); !slices.Equal(got, []types.NamespacedName{usesLater}) {
		t.Fatalf("after a missing Secret appeared: %v, want [%v]", got, usesLater)
	}

	if err := c.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	p.remember(usesLater, secretVersions{})
	if got := p.changed(ctx); !slices.Equal(got, []types.NamespacedName{usesCreds}) {
		t.Fatalf("after creds was deleted: %v, want [%v]", got, usesCreds)
	}
}

var _ client.Reader = (*recordingReader)(nil)

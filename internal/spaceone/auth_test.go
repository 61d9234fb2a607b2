package spaceone_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/costops/cost-analysis-operator/internal/scheme"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
)

// countingClient counts the TokenReviews and SubjectAccessReviews sent to the API server.
func countingClient(t *testing.T, reviews, accessReviews *atomic.Int32) client.Client {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			switch obj.(type) {
			case *authnv1.TokenReview:
				reviews.Add(1)
			case *authzv1.SubjectAccessReview:
				accessReviews.Add(1)
			}
			return c.Create(ctx, obj, opts...)
		},
	})
}

func TestKubeAuthenticatorChecksTokensAndRBAC(t *testing.T) {
	ctx := context.Background()
	tests := map[string]struct {
		token         string
		access        spaceone.Access
		wantUser      string
		wantErr       error
		wantAllowed   bool
		calls         int
		tokenReviews  int32 // after all calls
		accessReviews int32
	}{
		"a permitted caller is checked once and then served from the cache": {
			token: readerToken, access: spaceone.Access{Verb: "list", Resource: spaceone.ResourceJobs, Namespace: domainA},
			wantUser: "system:serviceaccount:callers:reader", wantAllowed: true, calls: 3, tokenReviews: 1, accessReviews: 1},
		"a refusal is never cached": {
			token: strangerToken, access: spaceone.Access{Verb: "list", Resource: spaceone.ResourceJobs, Namespace: domainA},
			wantUser: "system:serviceaccount:callers:stranger", wantAllowed: false, calls: 3, tokenReviews: 1, accessReviews: 3},
		"RBAC resource names apply to a named object": {
			token: cancellerToken, access: spaceone.Access{Verb: "patch", Resource: spaceone.ResourceJobs, Namespace: domainA, Name: "any"},
			wantUser: "system:serviceaccount:callers:canceller", wantAllowed: true, calls: 2, tokenReviews: 1, accessReviews: 1},
		"an invalid token is refused every time": {
			token: "not-a-token", wantErr: spaceone.ErrUnauthenticated, calls: 2, tokenReviews: 2},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var reviews, accessReviews atomic.Int32
			auth := spaceone.NewKubeAuthenticator(countingClient(t, &reviews, &accessReviews), 10*time.Second, 16)
			for range tc.calls {
				u, err := auth.Authenticate(ctx, tc.token)
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Authenticate: %v, want %v", err, tc.wantErr)
				}
				if err != nil {
					continue
				}
				if u.Name != tc.wantUser {
					t.Errorf("user %q, want %q", u.Name, tc.wantUser)
				}
				allowed, err := auth.Authorize(ctx, u, tc.access)
				if err != nil || allowed != tc.wantAllowed {
					t.Errorf("Authorize = %v, %v; want %v", allowed, err, tc.wantAllowed)
				}
			}
			if reviews.Load() != tc.tokenReviews || accessReviews.Load() != tc.accessReviews {
				t.Errorf("%d TokenReviews and %d SubjectAccessReviews, want %d and %d",
					reviews.Load(), accessReviews.Load(), tc.tokenReviews, tc.accessReviews)
			}
		})
	}
}

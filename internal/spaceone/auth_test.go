package spaceone_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/costops/cost-analysis-operator/internal/kubeauth"
	"github.com/costops/cost-analysis-operator/internal/spaceone"
)

// countingAuth is the manager's kubeauth over a client that counts the
// TokenReviews and SubjectAccessReviews sent to the API server.
func countingAuth(t *testing.T, reviews, accessReviews *atomic.Int32) *kubeauth.Auth {
	t.Helper()
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	inner := hc.Transport
	hc.Transport = roundTripper(func(r *http.Request) (*http.Response, error) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/tokenreviews"):
			reviews.Add(1)
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/subjectaccessreviews"):
			accessReviews.Add(1)
		}
		return inner.RoundTrip(r)
	})
	a, err := kubeauth.New(env.Config, hc, kubeauth.Options{TokenTTL: 10 * time.Second, AllowTTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

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
		"an empty token is refused without a review": {
			token: "", wantErr: spaceone.ErrUnauthenticated, calls: 2, tokenReviews: 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var reviews, accessReviews atomic.Int32
			auth := spaceone.NewKubeAuthenticator(countingAuth(t, &reviews, &accessReviews))
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

// mustAuth is the manager's kubeauth against the suite's API server.
func mustAuth(o kubeauth.Options) *kubeauth.Auth {
	a, err := kubeauth.New(env.Config, nil, o)
	if err != nil {
		panic(err)
	}
	return a
}

// Package kubeauth is the manager's one way of checking a caller: the cluster's
// own authentication (TokenReview) and authorization (SubjectAccessReview),
// through k8s.io/apiserver's delegating authenticator and authorizer with their
// caches. The SpaceONE HTTP API and the metrics endpoint both use it.
package kubeauth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"k8s.io/apiserver/pkg/authentication/authenticator"
)

// The manager asks the cluster who a caller is and what it may do: create on
// tokenreviews and subjectaccessreviews, which are cluster-scoped. That grant is
// written by hand in config/rbac/auth_role.yaml, a ClusterRole of its own, so that
// the generated manager-role holds namespaced resources only and the namespaced
// install can turn it into Roles.

// Options are the caches' lifetimes.
type Options struct {
	// TokenTTL is how long a TokenReview's answer (valid or not) is kept.
	TokenTTL time.Duration
	// AllowTTL and DenyTTL are how long a SubjectAccessReview's yes and no are
	// kept. A DenyTTL of 0 keeps no refusal, so a newly granted role works at once.
	AllowTTL, DenyTTL time.Duration
}

// DefaultOptions keep answers 10 s and refusals not at all: a client paging
// through a list costs no review per page, and a revoked role stops working
// within 10 s.
func DefaultOptions() Options {
	return Options{TokenTTL: 10 * time.Second, AllowTTL: 10 * time.Second}
}

// Auth checks callers against the cluster.
type Auth struct {
	authn authenticator.Request
	authz authorizer.Authorizer
}

// retry is the backoff of a review the API server did not answer (the one
// k8s.io/apiserver's options use by default).
var retry = wait.Backoff{Duration: 500 * time.Millisecond, Factor: 1.5, Jitter: 0.2, Steps: 5}

// New makes an Auth that sends its reviews through cfg (and httpClient, or one
// made from cfg when nil).
func New(cfg *rest.Config, httpClient *http.Client, o Options) (*Auth, error) {
	if httpClient == nil {
		var err error
		if httpClient, err = rest.HTTPClientFor(cfg); err != nil {
			return nil, err
		}
	}
	authnClient, err := authenticationv1.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	authzClient, err := authorizationv1.NewForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                 o.TokenTTL,
		TokenAccessReviewClient:  authnClient,
		TokenAccessReviewTimeout: 10 * time.Second,
		WebhookRetryBackoff:      &retry,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("making the authenticator: %w", err)
	}
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: authzClient,
		AllowCacheTTL:             o.AllowTTL,
		DenyCacheTTL:              o.DenyTTL,
		WebhookRetryBackoff:       &retry,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("making the authorizer: %w", err)
	}
	return &Auth{authn: authn, authz: authz}, nil
}

// AuthenticateToken says who a bearer token belongs to; false when the cluster
// does not accept it, an error when it could not be asked.
func (a *Auth) AuthenticateToken(ctx context.Context, token string) (user.Info, bool, error) {
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return nil, false, nil
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return nil, false, err
	}
	r.Header.Set("Authorization", "Bearer "+token)
	res, ok, err := a.authn.AuthenticateRequest(r)
	if err != nil || !ok {
		if refused(err) {
			err = nil
		}
		return nil, false, err
	}
	return res.User, true, nil
}

// refused reports whether err is the bearer authenticator's answer to a token
// the cluster did not accept (k8s.io/apiserver keeps that error unexported), as
// opposed to a review that could not be made.
func refused(err error) bool {
	return err != nil && strings.Contains(err.Error(), "invalid bearer token")
}

// Authorize asks whether the attributes' user may do what they describe.
func (a *Auth) Authorize(ctx context.Context, attrs authorizer.Attributes) (bool, string, error) {
	d, reason, err := a.authz.Authorize(ctx, attrs)
	return d == authorizer.DecisionAllow, reason, err
}

// MetricsFilter guards the metrics endpoint: a caller needs a token the cluster
// accepts and RBAC's leave to get the endpoint's path (a ClusterRole rule on
// nonResourceURLs ["/metrics"], see config/rbac/metrics_reader_role.yaml).
func (a *Auth) MetricsFilter() metricsserver.Filter {
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			res, ok, err := a.authn.AuthenticateRequest(r)
			switch {
			case err != nil && !refused(err):
				log.Error(err, "Checking a metrics caller's token failed")
				http.Error(w, "authentication failed", http.StatusInternalServerError)
				return
			case err != nil || !ok:
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			attrs := authorizer.AttributesRecord{User: res.User, Verb: strings.ToLower(r.Method), Path: r.URL.Path}
			allowed, reason, err := a.Authorize(r.Context(), attrs)
			if err != nil {
				log.Error(err, "Checking a metrics caller's access failed", "user", res.User.GetName())
				http.Error(w, "authorization failed", http.StatusInternalServerError)
				return
			}
			if !allowed {
				log.V(4).Info("Refused a metrics caller", "user", res.User.GetName(), "reason", reason)
				http.Error(w, "Forbidden: "+res.User.GetName()+" may not get "+r.URL.Path, http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}
}

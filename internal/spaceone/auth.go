package spaceone

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"

	"github.com/costops/cost-analysis-operator/internal/kubeauth"
)

// The manager checks every caller with the cluster's own authentication and RBAC
// (internal/kubeauth).

// Group is the API group whose RBAC rules govern the HTTP API.
const Group = "cost-analysis.costops.dev"

// Resources the HTTP API authorises against.
const (
	ResourceJobs     = "jobs"
	ResourceJobTasks = "jobtasks"
)

// User is an authenticated caller, as TokenReview described it.
type User struct {
	Name   string
	UID    string
	Groups []string
	Extra  map[string][]string
}

// Access is what one call needs: a verb on a resource in a namespace, on one object
// when Name is set (so that RBAC resourceNames apply).
type Access struct {
	Verb      string
	Resource  string
	Namespace string
	Name      string
}

// ErrUnauthenticated is returned by Authenticate for a token the cluster does not accept.
var ErrUnauthenticated = errors.New("the token is invalid or has expired")

// Authenticator checks callers. The handlers see only this interface, so tests can
// stand in for the cluster.
type Authenticator interface {
	// Authenticate returns the user a bearer token belongs to, ErrUnauthenticated
	// when the token is not valid, or another error when it could not be checked.
	Authenticate(ctx context.Context, token string) (User, error)
	// Authorize reports whether the user may have the access.
	Authorize(ctx context.Context, u User, a Access) (bool, error)
}

// bearerToken reads the caller's token from X-Auth-Token (SpaceONE's header) or
// Authorization: Bearer.
func bearerToken(r *http.Request) string {
	if t := strings.TrimSpace(r.Header.Get("X-Auth-Token")); t != "" {
		return t
	}
	h := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// KubeAuthenticator checks callers with the cluster's TokenReview and
// SubjectAccessReview through internal/kubeauth: the same delegating
// authenticator and authorizer of k8s.io/apiserver, with the same caches, that
// guard the metrics endpoint. Its answers are kept for the caches' TTLs
// (kubeauth.Options); refusals of access are not kept unless DenyTTL says so.
type KubeAuthenticator struct {
	auth *kubeauth.Auth
}

var _ Authenticator = (*KubeAuthenticator)(nil)

// NewKubeAuthenticator makes an Authenticator of the cluster's answers.
func NewKubeAuthenticator(a *kubeauth.Auth) *KubeAuthenticator { return &KubeAuthenticator{auth: a} }

// Authenticate implements Authenticator.
func (k *KubeAuthenticator) Authenticate(ctx context.Context, token string) (User, error) {
	ui, ok, err := k.auth.AuthenticateToken(ctx, token)
	if err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, ErrUnauthenticated
	}
	return User{Name: ui.GetName(), UID: ui.GetUID(), Groups: ui.GetGroups(), Extra: ui.GetExtra()}, nil
}

// Authorize implements Authenticator.
func (k *KubeAuthenticator) Authorize(ctx context.Context, u User, a Access) (bool, error) {
	allowed, _, err := k.auth.Authorize(ctx, authorizer.AttributesRecord{
		User:            &user.DefaultInfo{Name: u.Name, UID: u.UID, Groups: u.Groups, Extra: u.Extra},
		Verb:            a.Verb,
		Namespace:       a.Namespace,
		APIGroup:        Group,
		Resource:        a.Resource,
		Name:            a.Name,
		ResourceRequest: true,
	})
	if err != nil {
		return false, err
	}
	return allowed, nil
}

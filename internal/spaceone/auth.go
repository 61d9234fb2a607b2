package spaceone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The manager checks every caller with the cluster's own authentication and RBAC.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

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

// KubeAuthenticator checks tokens with TokenReview (authentication.k8s.io/v1) and
// access with SubjectAccessReview (authorization.k8s.io/v1). Positive answers are
// kept for a short time so that a client paging through a list does not cost two
// API calls per page; negative answers are never kept, so a newly granted role
// works at once, and a revoked one stops working within the TTL.
type KubeAuthenticator struct {
	c      client.Client
	tokens *ttlCache[User]
	access *ttlCache[struct{}]
}

var _ Authenticator = (*KubeAuthenticator)(nil)

// NewKubeAuthenticator makes an Authenticator that asks the API server through c,
// caching positive answers for ttl in at most size entries (per kind). A ttl of 0
// disables the cache.
func NewKubeAuthenticator(c client.Client, ttl time.Duration, size int) *KubeAuthenticator {
	return &KubeAuthenticator{c: c, tokens: newTTLCache[User](ttl, size), access: newTTLCache[struct{}](ttl, size)}
}

// Authenticate implements Authenticator.
func (k *KubeAuthenticator) Authenticate(ctx context.Context, token string) (User, error) {
	if token == "" {
		return User{}, ErrUnauthenticated
	}
	// The cache is keyed by the token's digest: the process never holds tokens longer
	// than a request.
	sum := sha256.Sum256([]byte(token))
	key := hex.EncodeToString(sum[:])
	if u, ok := k.tokens.get(key); ok {
		return u, nil
	}
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}
	if err := k.c.Create(ctx, tr); err != nil {
		return User{}, err
	}
	if !tr.Status.Authenticated {
		return User{}, ErrUnauthenticated
	}
	ui := tr.Status.User
	u := User{Name: ui.Username, UID: ui.UID, Groups: ui.Groups}
	if len(ui.Extra) > 0 {
		u.Extra = make(map[string][]string, len(ui.Extra))
		for k, v := range ui.Extra {
			u.Extra[k] = []string(v)
		}
	}
	k.tokens.put(key, u)
	return u, nil
}

// Authorize implements Authenticator.
func (k *KubeAuthenticator) Authorize(ctx context.Context, u User, a Access) (bool, error) {
	key := accessKey(u, a)
	if _, ok := k.access.get(key); ok {
		return true, nil
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   u.Name,
		UID:    u.UID,
		Groups: u.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: a.Namespace,
			Verb:      a.Verb,
			Group:     Group,
			Resource:  a.Resource,
			Name:      a.Name,
		},
	}}
	if len(u.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authzv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			sar.Spec.Extra[k] = authzv1.ExtraValue(v)
		}
	}
	if err := k.c.Create(ctx, sar); err != nil {
		return false, err
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return false, nil
	}
	k.access.put(key, struct{}{})
	return true, nil
}

// accessKey identifies a user (with groups and extra, which RBAC may match on) and an
// access; \x00 cannot appear in any of them.
func accessKey(u User, a Access) string {
	var b strings.Builder
	for _, s := range []string{u.Name, u.UID, a.Verb, a.Resource, a.Namespace, a.Name} {
		b.WriteString(s)
		b.WriteByte(0)
	}
	groups := slices.Clone(u.Groups)
	slices.Sort(groups)
	for _, g := range groups {
		b.WriteString(g)
		b.WriteByte(1)
	}
	keys := make([]string, 0, len(u.Extra))
	for k := range u.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(2)
		for _, v := range u.Extra[k] {
			b.WriteString(v)
			b.WriteByte(3)
		}
	}
	sum := sha256.Sum256([]byte(b.String()))
	return string(sum[:])
}

// ttlCache is a small map whose entries expire; when full it drops expired entries,
// then arbitrary ones, so its size stays bounded whatever the callers send.
type ttlCache[V any] struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]ttlEntry[V]
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

func newTTLCache[V any](ttl time.Duration, size int) *ttlCache[V] {
	if size <= 0 {
		size = 1
	}
	return &ttlCache[V]{ttl: ttl, size: size, now: time.Now, entries: map[string]ttlEntry[V]{}}
}

func (c *ttlCache[V]) get(key string) (V, bool) {
	var zero V
	if c.ttl <= 0 {
		return zero, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return zero, false
	}
	if !c.now().Before(e.expires) {
		delete(c.entries, key)
		return zero, false
	}
	return e.value, true
}

func (c *ttlCache[V]) put(key string, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = ttlEntry[V]{value: v, expires: now.Add(c.ttl)}
}

func (c *ttlCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

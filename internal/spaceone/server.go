// Package spaceone serves the HTTP APIs from the manager's informer cache: the
// SpaceONE cost-analysis v1 Job and JobTask calls (get, list, stat, cancel) and the
// job metering call (GET /v5/{project_id}/jobs/{job_id}/metering). Every call carries
// a Kubernetes bearer token (X-Auth-Token or Authorization: Bearer), checked with
// TokenReview and authorised with SubjectAccessReview on the namespace it touches;
// domain_id and project_id are namespaces, ids are object names.
//
// The server runs on every replica (it is not a leader-election runnable), over TLS
// with a certificate from a directory or a self-signed one made at start.
package spaceone

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/costops/cost-analysis-operator/internal/kubeauth"
)

// Options configure the API server (main.go's --api-* flags).
type Options struct {
	// BindAddress is host:port to listen on; "" or "0" disables the API.
	BindAddress string
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	CertDir string
	// SelfSigned allows a self-signed certificate, made at start, when CertDir is empty.
	SelfSigned bool
	// SelfSignedHosts are extra DNS names or IPs of the self-signed certificate
	// (it always holds localhost, 127.0.0.1, ::1 and the host name).
	SelfSignedHosts []string
	// Now is the clock of relative times in queries ("now-7d"); time.Now by default.
	Now func() time.Time
}

// DefaultOptions are the flags' defaults: the API on :8443 over a self-signed
// certificate unless a certificate directory is given.
func DefaultOptions() Options {
	return Options{
		BindAddress: ":8443",
		SelfSigned:  true,
	}
}

// Enabled reports whether the options ask for the API to be served.
func (o Options) Enabled() bool { return o.BindAddress != "" && o.BindAddress != "0" }

// Server is the HTTP API. It is a manager.Runnable that runs on every replica.
type Server struct {
	reader client.Reader
	// jobStore and taskStore are the cache's informers, read in place (inplace.go);
	// nil: read through reader.List.
	jobStore, taskStore Store
	writer              client.Client
	auth                Authenticator
	opts                Options
	log                 logr.Logger
	handler             http.Handler
}

var (
	_ manager.Runnable               = (*Server)(nil)
	_ manager.LeaderElectionRunnable = (*Server)(nil)
)

// New makes the API server. reader is the manager's cache, which must carry
// internal/indexes's indexes; writer patches spec.cancel; auth checks callers.
func New(reader client.Reader, writer client.Client, auth Authenticator, opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{reader: reader, writer: writer, auth: auth, opts: opts, log: ctrl.Log.WithName("api")}
	s.jobStore, s.taskStore = storesOf(reader)
	s.handler = s.routes()
	return s
}

// Setup adds the API server to the manager, unless o disables it; auth checks
// its callers.
func Setup(mgr manager.Manager, auth *kubeauth.Auth, o Options) error {
	if !o.Enabled() {
		return nil
	}
	if o.CertDir == "" && !o.SelfSigned {
		return errors.New("the HTTP API needs a certificate: set --api-cert-dir, or allow --api-self-signed, or disable it with --api-bind-address=0")
	}
	return mgr.Add(New(mgr.GetCache(), mgr.GetClient(), NewKubeAuthenticator(auth), o))
}

// routes maps the API documents' paths to their calls.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	const v1 = "/cost-analysis/v1"
	// Job: the current paths, then the older documented forms.
	mux.Handle("POST "+v1+"/job/get", s.spaceone(s.getJob))
	mux.Handle("POST "+v1+"/job/list", s.spaceone(s.listJobs))
	mux.Handle("POST "+v1+"/job/stat", s.spaceone(s.statJobs))
	mux.Handle("POST "+v1+"/job/cancel", s.spaceone(s.cancelJob))
	mux.Handle("GET "+v1+"/job/{job_id}", s.spaceone(s.getJob, "job_id"))
	mux.Handle("POST "+v1+"/job/{job_id}/cancel", s.spaceone(s.cancelJob, "job_id"))
	mux.Handle("GET "+v1+"/jobs", s.spaceone(s.listJobs))
	mux.Handle("POST "+v1+"/jobs/search", s.spaceone(s.listJobs))
	mux.Handle("POST "+v1+"/jobs/stat", s.spaceone(s.statJobs))
	// JobTask.
	mux.Handle("POST "+v1+"/job-task/get", s.spaceone(s.getJobTask))
	mux.Handle("POST "+v1+"/job-task/list", s.spaceone(s.listJobTasks))
	mux.Handle("POST "+v1+"/job-task/stat", s.spaceone(s.statJobTasks))
	// Job metering.
	mux.HandleFunc("GET /v5/{project_id}/jobs/{job_id}/metering", s.serveMetering)
	// Anything else: a JSON error, as from every route, rather than the mux's text.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allowed []string
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); m != r.Method && pattern != "/" {
				allowed = append(allowed, m)
			}
		}
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Detail: errorDetail{Code: CodeMethodNotAllowed,
				Message: fmt.Sprintf("Method not allowed. (method = %s, path = %s, allowed = %s)", r.Method, r.URL.Path, strings.Join(allowed, ", "))}})
			return
		}
		writeJSON(w, http.StatusNotFound, errorBody{Detail: errorDetail{Code: CodeNotFound,
			Message: fmt.Sprintf("No such route. (method = %s, path = %s)", r.Method, r.URL.Path)}})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		mux.ServeHTTP(w, r)
	})
}

// Handler is the API's routes, without TLS (tests, embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// call is one cost-analysis call: its caller and parameters.
type call struct {
	user   User
	params params
}

type callFunc func(ctx context.Context, c *call) (any, error)

// spaceone wraps a cost-analysis call: authentication, parameters, the answer or a
// SpaceONE-style error.
func (s *Server) spaceone(fn callFunc, pathKeys ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, err := s.serveCall(w, r, fn, pathKeys)
		if err != nil {
			e := asError(err)
			if e.Status >= http.StatusInternalServerError {
				s.log.Error(err, "API call failed", "path", r.URL.Path)
			} else {
				s.log.V(1).Info("API call refused", "path", r.URL.Path, "code", e.Code, "message", e.Message)
			}
			writeJSON(w, e.Status, errorBody{Detail: errorDetail{Code: e.Code, Message: e.Message}})
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *Server) serveCall(w http.ResponseWriter, r *http.Request, fn callFunc, pathKeys []string) (any, error) {
	ctx := r.Context()
	token := bearerToken(r)
	if token == "" {
		return nil, errUnauthenticated("no token: set X-Auth-Token or Authorization: Bearer")
	}
	user, err := s.auth.Authenticate(ctx, token)
	if errors.Is(err, ErrUnauthenticated) {
		return nil, errUnauthenticated(ErrUnauthenticated.Error())
	}
	if err != nil {
		return nil, fmt.Errorf("checking a token: %w", err)
	}
	p, err := readParams(w, r, pathKeys...)
	if err != nil {
		return nil, err
	}
	return fn(ctx, &call{user: user, params: p})
}

// authorize checks the caller's access; a refusal is ERROR_PERMISSION_DENIED.
func (s *Server) authorize(ctx context.Context, c *call, a Access) error {
	ok, err := s.auth.Authorize(ctx, c.user, a)
	if err != nil {
		return fmt.Errorf("checking access: %w", err)
	}
	if !ok {
		return errForbidden(a)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *Server) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable: it listens on the bind address and serves until
// ctx ends.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("the HTTP API cannot listen on %s: %w", s.opts.BindAddress, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves the API over TLS on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tlsConfig, err := s.tlsConfig(ctx)
	if err != nil {
		_ = ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	s.log.Info("Serving the HTTP API", "address", ln.Addr().String())
	err = srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

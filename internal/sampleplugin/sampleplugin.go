// Package sampleplugin is a SpaceONE cost-analysis plugin that makes up its data: it
// serves the DataSource, Job and Cost services of the plugin protocol, splits a run
// into one task per account and month, streams deterministic synthetic costs, and
// fails, stalls or misbehaves on request through the DataSource's plugin options.
// It backs the tests of the client, the controllers and the collector, the e2e
// suite (cmd/sample-plugin), and lets an operator user try the product without a
// billing account. The options it understands are the Opt* constants.
package sampleplugin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// The plugin's methods, as Calls names them.
const (
	MethodInit              = "init"
	MethodVerify            = "verify"
	MethodGetTasks          = "get_tasks"
	MethodGetLinkedAccounts = "get_linked_accounts"
	MethodGetData           = "get_data"
)

var methods = []string{MethodInit, MethodVerify, MethodGetTasks, MethodGetLinkedAccounts, MethodGetData}

// Server is a running (or ready to run) sample plugin.
type Server struct {
	grpc     *grpc.Server
	clock    func() time.Time
	logger   *slog.Logger
	calls    map[string]*atomic.Int64 // fixed at New: read without a lock
	grpcOpts []grpc.ServerOption
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock that decides the current month (the option "now" still
// wins over it).
func WithClock(now func() time.Time) Option { return func(s *Server) { s.clock = now } }

// WithLogger logs every call at debug level, and failures at info level.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.logger = l } }

// WithServerOptions passes options to the gRPC server, e.g. grpc.Creds for TLS.
func WithServerOptions(opts ...grpc.ServerOption) Option {
	return func(s *Server) { s.grpcOpts = append(s.grpcOpts, opts...) }
}

// New returns a sample plugin; Serve runs it.
func New(opts ...Option) *Server {
	s := &Server{
		clock:  time.Now,
		logger: slog.New(slog.DiscardHandler),
		calls:  map[string]*atomic.Int64{},
	}
	for _, m := range methods {
		s.calls[m] = &atomic.Int64{}
	}
	for _, o := range opts {
		o(s)
	}
	s.grpc = grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(newWireCodec())}, s.grpcOpts...)...)
	pluginpb.RegisterDataSourceServer(s.grpc, dataSourceService{Server: s})
	pluginpb.RegisterJobServer(s.grpc, jobService{Server: s})
	pluginpb.RegisterCostServer(s.grpc, costService{Server: s})
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, hs)
	return s
}

// Serve accepts connections on lis until Stop or Shutdown.
func (s *Server) Serve(lis net.Listener) error { return s.grpc.Serve(lis) }

// Stop closes every connection and cancels the calls in flight at once.
func (s *Server) Stop() { s.grpc.Stop() }

// Shutdown stops accepting calls and waits for those in flight to end, or for ctx
// to be done, when it stops them.
func (s *Server) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// Calls is how many times a method was called ("get_tasks", or "Job.get_tasks").
func (s *Server) Calls(method string) int64 {
	if i := strings.LastIndexByte(method, '.'); i >= 0 {
		method = method[i+1:]
	}
	if c, ok := s.calls[method]; ok {
		return c.Load()
	}
	return 0
}

// ResetCalls sets every call count to zero.
func (s *Server) ResetCalls() {
	for _, c := range s.calls {
		c.Store(0)
	}
}

// StartOnLoopback serves a new sample plugin on a free port of 127.0.0.1 and returns
// its address and a function that stops it.
func StartOnLoopback(opts ...Option) (addr string, srv *Server, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, fmt.Errorf("sample plugin: %w", err)
	}
	srv = New(opts...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	stop = func() {
		srv.Stop()
		<-done
	}
	return lis.Addr().String(), srv, stop, nil
}

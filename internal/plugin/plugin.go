// Package plugin is the operator's client of SpaceONE cost-analysis plugins. It
// speaks the plugin protocol (DataSource.init and verify, Job.get_tasks,
// Cost.get_linked_accounts and get_data) over gRPC with plain Go values, so the
// controllers and the collector never touch protobuf types; it shares one connection
// per plugin endpoint, bounds every call with a deadline, retries a plugin that is
// unavailable with backoff, rejects malformed answers, and records each call in the
// manager's Prometheus metrics.
package plugin

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// Defaults of Options.
const (
	DefaultCallTimeout = 30 * time.Second
	DefaultRetries     = 3
	DefaultBackoff     = 200 * time.Millisecond
	// MaxBackoff caps the doubling backoff between retries.
	MaxBackoff = 5 * time.Second
	// MaxMessageBytes is the largest message accepted from a plugin: a plan of
	// 100,000 tasks or a large batch of costs is well past gRPC's default of 4 MiB.
	MaxMessageBytes = 128 << 20
)

// TLSConfig says how to reach a plugin that speaks TLS.
type TLSConfig struct {
	// ServerName overrides the name checked against the plugin's certificate (by
	// default the endpoint's host).
	ServerName string
	// CAPEM holds the PEM certificates that sign the plugin's certificate; empty
	// means the system's roots.
	CAPEM []byte
	// InsecureSkipVerify accepts any certificate. For tests only.
	InsecureSkipVerify bool
}

// Options says where a plugin is and how to call it.
type Options struct {
	// Endpoint is the plugin's gRPC address, host:port (or any gRPC target).
	Endpoint string
	// TLS is nil for plaintext.
	TLS *TLSConfig
	// CallTimeout bounds each attempt of a call (default 30s). For get_data's stream
	// it bounds the wait for each message instead, so a long, healthy stream goes on
	// while a stalled one fails.
	CallTimeout time.Duration
	// Retries is how many times a call that failed with codes.Unavailable is tried
	// again (default 3; negative for none). No other failure is retried.
	Retries int
	// Backoff is the pause before the first retry (default 200ms), doubled for each
	// further retry up to MaxBackoff.
	Backoff time.Duration
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = DefaultCallTimeout
	}
	switch {
	case o.Retries == 0:
		o.Retries = DefaultRetries
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	return o
}

// connKey identifies a connection: everything that changes how it is dialed.
type connKey struct {
	endpoint   string
	tls        bool
	serverName string
	insecure   bool
	ca         [sha256.Size]byte
}

func keyOf(o Options) connKey {
	k := connKey{endpoint: o.Endpoint}
	if o.TLS != nil {
		k.tls, k.serverName, k.insecure = true, o.TLS.ServerName, o.TLS.InsecureSkipVerify
		if len(o.TLS.CAPEM) > 0 {
			k.ca = sha256.Sum256(o.TLS.CAPEM)
		}
	}
	return k
}

// Pool caches one gRPC connection per plugin endpoint and TLS settings. Connections
// are opened lazily: a plugin that cannot be reached fails its calls with
// codes.Unavailable (after the retries), never Pool.Client. A Pool is safe for
// concurrent use.
type Pool struct {
	mu     sync.Mutex
	conns  map[connKey]*grpc.ClientConn
	closed bool
}

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{conns: map[connKey]*grpc.ClientConn{}} }

// ErrPoolClosed is returned by Client after Close.
var ErrPoolClosed = errors.New("plugin: the connection pool is closed")

// Client returns a client of the plugin that opts names, sharing the pool's
// connection to it. It fails only on options that cannot work (no endpoint, a CA
// that is not PEM).
func (p *Pool) Client(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	if opts.Endpoint == "" {
		return nil, errors.New("plugin: no endpoint")
	}
	key := keyOf(opts)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPoolClosed
	}
	conn, ok := p.conns[key]
	if !ok {
		var err error
		if conn, err = dial(opts); err != nil {
			return nil, err
		}
		p.conns[key] = conn
	}
	return newClient(conn, opts), nil
}

// Close closes every connection. Clients taken from the pool stop working.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for k, c := range p.conns {
		_ = c.Close()
		delete(p.conns, k)
	}
}

func dial(opts Options) (*grpc.ClientConn, error) {
	creds, err := transportCredentials(opts.TLS)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(opts.Endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("cost-analysis-operator"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
		// Reconnect quickly: the call retries (Options.Retries) are the backoff
		// that matters, and each one wakes the connection up anyway.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("plugin: endpoint %q: %w", opts.Endpoint, err)
	}
	return conn, nil
}

func transportCredentials(t *TLSConfig) (credentials.TransportCredentials, error) {
	if t == nil {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user's explicit choice, for tests
	}
	if len(t.CAPEM) > 0 {
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(t.CAPEM) {
			return nil, errors.New("plugin: the TLS CA holds no PEM certificate")
		}
		cfg.RootCAs = roots
	}
	return credentials.NewTLS(cfg), nil
}

// Client calls one plugin. Get one from a Pool.
type Client struct {
	opts Options
	conn *grpc.ClientConn
	ds   pluginpb.DataSourceClient
	job  pluginpb.JobClient
	cost pluginpb.CostClient
}

func newClient(conn *grpc.ClientConn, opts Options) *Client {
	return &Client{
		opts: opts,
		conn: conn,
		ds:   pluginpb.NewDataSourceClient(conn),
		job:  pluginpb.NewJobClient(conn),
		cost: pluginpb.NewCostClient(conn),
	}
}

// Endpoint is the plugin's address.
func (c *Client) Endpoint() string { return c.opts.Endpoint }

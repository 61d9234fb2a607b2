package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/url"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Registry holds one open Store per DSN for a process that serves many data
// sources (the manager): the first Get of a DSN opens its pool and applies the
// migrations; later ones return the same Store. A DSN that fails to open or
// migrate is not remembered, so the next Get tries again.
type Registry struct {
	mu     sync.Mutex
	stores map[[32]byte]*Store
	// maxConns bounds each pool (0: pgxpool's default).
	maxConns int32
}

// NewRegistry returns an empty Registry; maxConns bounds each store's pool (0:
// pgxpool's default, the larger of 4 and the number of CPUs).
func NewRegistry(maxConns int32) *Registry {
	return &Registry{stores: map[[32]byte]*Store{}, maxConns: maxConns}
}

// Get returns the Store of dsn, opening and migrating it on first use.
func (r *Registry) Get(ctx context.Context, dsn string) (*Store, error) {
	key := sha256.Sum256([]byte(dsn))
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.stores[key]; ok {
		return s, nil
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, fmt.Errorf("store: the DSN cannot be parsed (%s)", Redact(dsn))
	}
	if r.maxConns > 0 {
		cfg.MaxConns = r.maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to %s: %w", Redact(dsn), err)
	}
	if err := MigratePool(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: migrate %s: %w", Redact(dsn), err)
	}
	s, err := New(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	r.stores[key] = s
	return s, nil
}

// Close closes every Store.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.stores {
		s.Close()
		delete(r.stores, k)
	}
}

// Redact is dsn fit for a log or a status message: host, port and database,
// never the password (nor any other parameter).
func Redact(dsn string) string {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		if u, uerr := url.Parse(dsn); uerr == nil && u.Host != "" {
			return "postgres://" + u.Host + u.Path
		}
		return "(unparsable DSN)"
	}
	c := cfg.ConnConfig
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

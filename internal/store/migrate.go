package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// versionTable is goose's version table for the store's schema.
const versionTable = "cost_store_version"

// migrateLockID is the session advisory lock held while migrating
// (crc64 of "cost-analysis-operator/store/migrate", truncated).
const migrateLockID int64 = 7310293184117711362

// Migrate brings the schema of the database at dsn to the newest version. It is
// idempotent and safe to call from several processes at once.
func Migrate(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("store: parse dsn: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	return migrateDB(ctx, db, 0)
}

// MigratePool is Migrate over an existing pool.
func MigratePool(ctx context.Context, pool *pgxpool.Pool) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	return migrateDB(ctx, db, 0)
}

// SchemaVersion is the newest migration version this binary knows.
func SchemaVersion() int64 {
	entries, _ := fs.ReadDir(migrationFiles, "migrations")
	var newest int64
	for _, e := range entries {
		prefix, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(prefix, 10, 64); err == nil && v > newest {
			newest = v
		}
	}
	return newest
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	return goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(advisoryLocker{id: migrateLockID}),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
}

// migrateDB migrates up to version target (0: the newest).
func migrateDB(ctx context.Context, db *sql.DB, target int64) error {
	p, err := newProvider(db)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	if target == 0 {
		_, err = p.Up(ctx)
	} else {
		_, err = p.UpTo(ctx, target)
	}
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	return nil
}

// advisoryLocker is a goose SessionLocker that waits on pg_advisory_lock
// (goose's own locker polls pg_try_advisory_lock every few seconds).
type advisoryLocker struct{ id int64 }

func (l advisoryLocker) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	return nil
}

func (l advisoryLocker) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", l.id); err != nil {
		return fmt.Errorf("release the migration lock: %w", err)
	}
	return nil
}

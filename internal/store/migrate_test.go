package store

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
)

func schemaVersion(t *testing.T, ctx context.Context, conn *pgx.Conn) (version, applied int64) {
	t.Helper()
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version_id), 0), count(*) FILTER (WHERE version_id > 0)
		FROM `+versionTable+` WHERE is_applied`).Scan(&version, &applied); err != nil {
		t.Fatalf("read the schema version: %v", err)
	}
	return version, applied
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestMigrate(t *testing.T) {
	newest := SchemaVersion()
	if newest < 2 {
		t.Fatalf("SchemaVersion() = %d, want at least 2 migrations", newest)
	}
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, dsn string)
	}{
		{"an empty database migrates to the newest version", func(t *testing.T, ctx context.Context, dsn string) {
			if err := Migrate(ctx, dsn); err != nil {
				t.Fatal(err)
			}
			conn := connect(t, ctx, dsn)
			if v, n := schemaVersion(t, ctx, conn); v != newest || n != newest {
				t.Fatalf("version %d with %d migrations applied, want %d", v, n, newest)
			}
			for _, rel := range []string{"run", "task_load", "cost_record", "task_rollup", "cost_monthly", "cost", "focus_cost"} {
				var ok bool
				if err := conn.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, rel).Scan(&ok); err != nil || !ok {
					t.Errorf("relation %s missing after migrate (%v)", rel, err)
				}
			}
		}},
		{"migrating an up-to-date database again changes nothing", func(t *testing.T, ctx context.Context, dsn string) {
			for range 2 {
				if err := Migrate(ctx, dsn); err != nil {
					t.Fatal(err)
				}
			}
			if v, n := schemaVersion(t, ctx, connect(t, ctx, dsn)); v != newest || n != newest {
				t.Fatalf("version %d with %d migrations applied after two runs, want %d once each", v, n, newest)
			}
		}},
		{"four concurrent Migrate calls all succeed and apply each migration once", func(t *testing.T, ctx context.Context, dsn string) {
			var wg sync.WaitGroup
			errs := make([]error, 4)
			for i := range errs {
				wg.Go(func() { errs[i] = Migrate(ctx, dsn) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Migrate #%d: %v", i, err)
				}
			}
			if v, n := schemaVersion(t, ctx, connect(t, ctx, dsn)); v != newest || n != newest {
				t.Fatalf("version %d with %d migrations applied, want %d once each", v, n, newest)
			}
		}},
		{"a version 1 database with committed rows migrates up and keeps them, rolled up", func(t *testing.T, ctx context.Context, dsn string) {
			cfg, err := pgx.ParseConfig(dsn)
			if err != nil {
				t.Fatal(err)
			}
			db := stdlib.OpenDB(*cfg)
			defer db.Close()
			if err := migrateDB(ctx, db, 1); err != nil {
				t.Fatal(err)
			}
			conn := connect(t, ctx, dsn)
			if v, _ := schemaVersion(t, ctx, conn); v != 1 {
				t.Fatalf("at version %d, want 1", v)
			}
			for _, sql := range []string{
				`INSERT INTO run (job_uid, domain, data_source, job, state) VALUES ('j1', 'ns', 'ds', 'job1', 'committed'), ('j2', 'ns', 'ds', 'job2', 'open')`,
				`SELECT cost_record_ensure_partition('2024-03-05')`,
				`INSERT INTO cost_record (cost, usage_quantity, provider, region_code, product, billed_date, account_id, data,
					domain, data_source, job, job_uid, job_task, job_task_uid)
				 VALUES (1.5, 2, 'aws', 'us-east-1', 'EC2', '2024-03-05', '111', '{"x": 2}', 'ns', 'ds', 'job1', 'j1', 't1', 'j1/t1'),
				        (2.5, 1, 'aws', 'us-east-1', 'EC2', '2024-03-06', '111', '{"x": 3}', 'ns', 'ds', 'job1', 'j1', 't1', 'j1/t1'),
				        (9, 1, 'aws', 'us-east-1', 'EC2', '2024-03-06', '111', NULL, 'ns', 'ds', 'job2', 'j2', 't1', 'j2/t1')`,
			} {
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			if err := Migrate(ctx, dsn); err != nil {
				t.Fatal(err)
			}
			if v, _ := schemaVersion(t, ctx, conn); v != newest {
				t.Fatalf("at version %d after migrating up, want %d", v, newest)
			}
			var n int64
			var total float64
			if err := conn.QueryRow(ctx, `SELECT count(*), sum("BilledCost") FROM focus_cost`).Scan(&n, &total); err != nil {
				t.Fatal(err)
			}
			if n != 2 || total != 4 {
				t.Fatalf("focus_cost after the upgrade: %d rows costing %v, want the 2 committed rows costing 4", n, total)
			}
			var cost float64
			var data map[string]any
			if err := conn.QueryRow(ctx, `SELECT cost, data FROM cost_monthly WHERE billed_month = '2024-03'`).Scan(&cost, &data); err != nil {
				t.Fatal(err)
			}
			if cost != 4 || data["x"] != 5.0 {
				t.Fatalf("the backfilled rollup of 2024-03 is cost %v data %v, want 4 and {x: 5}", cost, data)
			}
			s, err := Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			checkRollup(t, s)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := pgtest.Start(t)
			tt.run(t, testCtx(t), dsn)
		})
	}
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the cost store of one PostgreSQL database. It is safe for concurrent
// use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	// ddl is a one-connection pool of its own for making month partitions: a
	// task write needs one while it holds a connection of pool in its
	// transaction, so taking it from pool could wait forever on a full pool.
	ddl *pgxpool.Pool
}

// Open connects to the database at dsn. It does not migrate: call Migrate.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	s, err := wrapPool(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// New wraps an existing pool; Close leaves it open.
func New(pool *pgxpool.Pool) (*Store, error) { return wrapPool(pool) }

func wrapPool(pool *pgxpool.Pool) (*Store, error) {
	cfg := pool.Config() // a copy
	cfg.MinConns = 0
	cfg.MinIdleConns = 0
	cfg.MaxConns = 1
	ddl, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	return &Store{pool: pool, ddl: ddl}, nil
}

// Close closes the store's connections (the pool given to New stays open).
func (s *Store) Close() {
	s.ddl.Close()
	if s.ownPool {
		s.pool.Close()
	}
}

// Ping checks the connection.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// State is the state of a run in the store.
type State string

const (
	// StateNone: the store has never heard of the run.
	StateNone       State = ""
	StateOpen       State = "open"
	StateCommitted  State = "committed"
	StateRolledBack State = "rolled_back"
)

var (
	// ErrRunClosed: a task write to a run that is committed or rolled back.
	ErrRunClosed = errors.New("the run is no longer open")
	// ErrRolledBack: a commit of a rolled-back run.
	ErrRolledBack = errors.New("the run was rolled back")
	// ErrCommitted: a rollback of a committed run.
	ErrCommitted = errors.New("the run was committed")
	// ErrNotCommitted: committed figures asked of a run that is not committed.
	ErrNotCommitted = errors.New("the run is not committed")
	// ErrRunConflict: a UID already known with another domain, data source or job.
	ErrRunConflict = errors.New("the run is known with other names")
)

// RunRef names a run: a Job, by its UID.
type RunRef struct {
	Domain     string // the namespace
	DataSource string
	Job        string
	JobUID     string
}

func (r RunRef) validate() error {
	for _, f := range []struct{ name, v string }{
		{"domain", r.Domain}, {"data source", r.DataSource}, {"job", r.Job}, {"job uid", r.JobUID},
	} {
		if f.v == "" {
			return fmt.Errorf("store: the run has no %s", f.name)
		}
	}
	return nil
}

// TaskRef names one attempt of a task: a JobTask, by its UID, in its run.
type TaskRef struct {
	Domain        string
	DataSource    string
	DataSourceUID string
	Job           string
	JobUID        string
	JobTask       string
	JobTaskUID    string
	// Attempt identifies the attempt (the pod's name or UID); informational.
	Attempt string
}

func (t TaskRef) run() RunRef {
	return RunRef{Domain: t.Domain, DataSource: t.DataSource, Job: t.Job, JobUID: t.JobUID}
}

func (t TaskRef) validate() error {
	if err := t.run().validate(); err != nil {
		return err
	}
	if t.JobTask == "" || t.JobTaskUID == "" {
		return errors.New("store: the task has no name or uid")
	}
	return nil
}

// WriteResult is what a task loaded.
type WriteResult struct {
	Rows  int64
	Bytes int64 // the size of the values sent: 8 per number, 4 per date, the length of each text and JSON
}

// Advisory lock keys. The partition key is also in migrations/00001_base.sql.
const (
	partitionLockID int64 = 7310293184117711361
	// CommitLockClass is the first key of the advisory lock that serializes the
	// commits of a data source; the second is hashtext(domain || '/' || data_source).
	CommitLockClass int32 = 0x636f7374 // "cost"
)

func rollbackQuietly(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// lockRun makes the run's row if missing and locks it (FOR SHARE or FOR
// UPDATE), returning its state.
func lockRun(ctx context.Context, tx pgx.Tx, run RunRef, mode string) (State, error) {
	if _, err := tx.Exec(ctx, `INSERT INTO run (job_uid, domain, data_source, job) VALUES ($1, $2, $3, $4)
		ON CONFLICT (job_uid) DO NOTHING`, run.JobUID, run.Domain, run.DataSource, run.Job); err != nil {
		return "", fmt.Errorf("store: record the run: %w", err)
	}
	var state, domain, ds, job string
	if err := tx.QueryRow(ctx, `SELECT state, domain, data_source, job FROM run WHERE job_uid = $1 `+mode,
		run.JobUID).Scan(&state, &domain, &ds, &job); err != nil {
		return "", fmt.Errorf("store: lock the run: %w", err)
	}
	if domain != run.Domain || ds != run.DataSource || job != run.Job {
		return "", fmt.Errorf("%w: run %s is %s/%s job %s, not %s/%s job %s", ErrRunConflict,
			run.JobUID, domain, ds, job, run.Domain, run.DataSource, run.Job)
	}
	return State(state), nil
}

// Commit makes the run's rows visible, in one transaction serialized per data
// source: it deletes the rows of the data source's other committed runs that
// lie in any of windows, marks the run committed and rebuilds the rollup of the
// months touched (the windows' months that held data and the run's own months).
// A second Commit of a committed run changes nothing; a Commit of a rolled-back
// run fails with ErrRolledBack. Windows are checked before anything is deleted.
func (s *Store) Commit(ctx context.Context, run RunRef, windows []Window) error {
	if err := run.validate(); err != nil {
		return err
	}
	pws, err := parseWindows(windows)
	if err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	if windows == nil {
		windows = []Window{}
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	defer rollbackQuietly(tx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))",
		CommitLockClass, run.Domain+"/"+run.DataSource); err != nil {
		return fmt.Errorf("store: commit %s: lock the data source: %w", run.JobUID, err)
	}
	state, err := lockRun(ctx, tx, run, "FOR UPDATE")
	if err != nil {
		return err
	}
	switch state {
	case StateCommitted:
		return nil
	case StateRolledBack:
		return fmt.Errorf("store: commit %s: %w", run.JobUID, ErrRolledBack)
	}
	touched := map[string]bool{}
	// The data source's other committed runs: the only ones whose rows a window
	// replaces (an open run's rows are its own commit's business).
	others, err := queryStrings(ctx, tx, `SELECT job_uid FROM run WHERE domain = $1 AND data_source = $2
		AND state = 'committed' AND job_uid <> $3`, run.Domain, run.DataSource, run.JobUID)
	if err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	if len(others) > 0 {
		if err := replaceWindows(ctx, tx, run, others, pws, touched); err != nil {
			return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
		}
	}
	own, err := queryStrings(ctx, tx, `SELECT DISTINCT billed_month FROM task_rollup WHERE job_uid = $1`, run.JobUID)
	if err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	for _, m := range own {
		touched[m] = true
	}
	if _, err := tx.Exec(ctx, `UPDATE run SET state = 'committed', windows = $2, committed_at = now(), updated_at = now()
		WHERE job_uid = $1`, run.JobUID, windows); err != nil {
		return fmt.Errorf("store: commit %s: mark committed: %w", run.JobUID, err)
	}
	if err := rebuildMonthly(ctx, tx, run.Domain, run.DataSource, touched); err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: commit %s: %w", run.JobUID, err)
	}
	return nil
}

// replaceWindows deletes the rows of the runs others (of run's data source)
// that lie in the windows, keeps their task sums exact and adds the months it
// touched to touched.
func replaceWindows(ctx context.Context, tx pgx.Tx, run RunRef, others []string, pws []parsedWindow, touched map[string]bool) error {
	var plain, filtered []parsedWindow
	for _, p := range pws {
		if len(p.preds) == 0 {
			plain = append(plain, p)
		} else {
			filtered = append(filtered, p)
		}
	}
	scope := func(alias string) string {
		return alias + ".domain = $1 AND " + alias + ".data_source = $2 AND " + alias + ".job_uid = ANY($3)"
	}
	if len(plain) > 0 {
		// Whole months: the rows go, and so do the sums of those months.
		args := sqlArgs{run.Domain, run.DataSource, others}
		var rec, mon []string
		for _, p := range plain {
			rec = append(rec, p.recordPredicate(&args))
		}
		if _, err := tx.Exec(ctx, `DELETE FROM cost_record c WHERE `+scope("c")+
			` AND (`+strings.Join(rec, " OR ")+`)`, args...); err != nil {
			return fmt.Errorf("replace the windows: %w", err)
		}
		args = sqlArgs{run.Domain, run.DataSource, others}
		for _, p := range plain {
			mon = append(mon, p.monthPredicate(&args))
		}
		months, err := queryStrings(ctx, tx, `WITH d AS (DELETE FROM task_rollup t WHERE `+scope("t")+
			` AND (`+strings.Join(mon, " OR ")+`) RETURNING t.billed_month) SELECT DISTINCT billed_month FROM d`, args...)
		if err != nil {
			return fmt.Errorf("replace the windows' sums: %w", err)
		}
		for _, m := range months {
			touched[m] = true
		}
	}
	if len(filtered) == 0 {
		return nil
	}
	args := sqlArgs{run.Domain, run.DataSource, others}
	var rec []string
	for _, p := range filtered {
		rec = append(rec, p.recordPredicate(&args))
	}
	rows, err := tx.Query(ctx, `WITH d AS (DELETE FROM cost_record c WHERE `+scope("c")+
		` AND (`+strings.Join(rec, " OR ")+`) RETURNING c.job_uid, c.job_task_uid, c.billed_month)
		SELECT DISTINCT job_uid, job_task_uid, billed_month FROM d`, args...)
	if err != nil {
		return fmt.Errorf("replace the filtered windows: %w", err)
	}
	var jobs, tasks, months []string
	for rows.Next() {
		var j, t, m string
		if err := rows.Scan(&j, &t, &m); err != nil {
			rows.Close()
			return err
		}
		jobs, tasks, months = append(jobs, j), append(tasks, t), append(months, m)
		touched[m] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("replace the filtered windows: %w", err)
	}
	if len(tasks) == 0 {
		return nil
	}
	// Those tasks lost part of a month: rebuild their sums from the rows left.
	if _, err := tx.Exec(ctx, `DELETE FROM task_rollup t USING unnest($1::text[], $2::text[], $3::text[]) AS x(job, task, month)
		WHERE t.job_uid = x.job AND t.job_task_uid = x.task AND t.billed_month = x.month`, jobs, tasks, months); err != nil {
		return fmt.Errorf("rebuild task sums: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO task_rollup (job_uid, job_task_uid, domain, data_source, billed_month,
			account_id, provider, region_code, product, usage_type, usage_unit, cost, usage_quantity, data, rows)
		SELECT c.job_uid, c.job_task_uid, c.domain, c.data_source, c.billed_month, c.account_id, c.provider,
			c.region_code, c.product, c.usage_type, c.usage_unit, sum(c.cost), coalesce(sum(c.usage_quantity), 0),
			cost_jsonb_sum(c.data), count(*)
		FROM cost_record c JOIN unnest($1::text[], $2::text[], $3::text[]) AS x(job, task, month)
			ON c.job_uid = x.job AND c.job_task_uid = x.task AND c.billed_month = x.month
		GROUP BY c.job_uid, c.job_task_uid, c.domain, c.data_source, c.billed_month, c.account_id, c.provider,
			c.region_code, c.product, c.usage_type, c.usage_unit`, jobs, tasks, months); err != nil {
		return fmt.Errorf("rebuild task sums: %w", err)
	}
	return nil
}

// rebuildMonthly recomputes cost_monthly for the months of a data source from
// the task sums of its committed runs.
func rebuildMonthly(ctx context.Context, tx pgx.Tx, domain, dataSource string, months map[string]bool) error {
	if len(months) == 0 {
		return nil
	}
	list := make([]string, 0, len(months))
	for m := range months {
		list = append(list, m)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM cost_monthly WHERE domain = $1 AND data_source = $2 AND billed_month = ANY($3)`,
		domain, dataSource, list); err != nil {
		return fmt.Errorf("rebuild the rollup: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO cost_monthly (domain, data_source, billed_month, billed_year, account_id,
			provider, region_code, region_key, product, usage_type, usage_unit, cost, usage_quantity, data, rows)
		SELECT t.domain, t.data_source, t.billed_month, left(t.billed_month, 4), t.account_id, t.provider,
			t.region_code, t.provider || '.' || t.region_code, t.product, t.usage_type, t.usage_unit,
			sum(t.cost), sum(t.usage_quantity), cost_jsonb_sum(t.data), sum(t.rows)
		FROM task_rollup t
		WHERE t.domain = $1 AND t.data_source = $2 AND t.billed_month = ANY($3)
			AND t.job_uid IN (SELECT job_uid FROM run WHERE domain = $1 AND data_source = $2 AND state = 'committed')
		GROUP BY t.domain, t.data_source, t.billed_month, t.account_id, t.provider, t.region_code,
			t.product, t.usage_type, t.usage_unit`, domain, dataSource, list); err != nil {
		return fmt.Errorf("rebuild the rollup: %w", err)
	}
	return nil
}

func queryStrings(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Rollback deletes the run's rows and marks it rolled back, so that no later
// write of it is accepted. It waits for task writes of the run in progress. A
// second Rollback changes nothing; a Rollback of a committed run fails with
// ErrCommitted.
func (s *Store) Rollback(ctx context.Context, run RunRef) error {
	if err := run.validate(); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, err)
	}
	defer rollbackQuietly(tx)
	state, err := lockRun(ctx, tx, run, "FOR UPDATE")
	if err != nil {
		return err
	}
	switch state {
	case StateRolledBack:
		return nil
	case StateCommitted:
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, ErrCommitted)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM cost_record WHERE job_uid = $1`, run.JobUID); err != nil {
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM task_rollup WHERE job_uid = $1`, run.JobUID); err != nil {
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE run SET state = 'rolled_back', rolled_back_at = now(), updated_at = now()
		WHERE job_uid = $1`, run.JobUID); err != nil {
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: roll back %s: %w", run.JobUID, err)
	}
	return nil
}

// RunState is the run's state; StateNone for a run the store never heard of.
func (s *Store) RunState(ctx context.Context, jobUID string) (State, error) {
	var state string
	err := s.pool.QueryRow(ctx, `SELECT state FROM run WHERE job_uid = $1`, jobUID).Scan(&state)
	if errors.Is(err, pgx.ErrNoRows) {
		return StateNone, nil
	}
	if err != nil {
		return StateNone, fmt.Errorf("store: run state: %w", err)
	}
	return State(state), nil
}

// CommittedRows is what the tasks of a committed run loaded (the last attempt of
// each); ErrNotCommitted when the run is not committed.
func (s *Store) CommittedRows(ctx context.Context, jobUID string) (WriteResult, error) {
	var state string
	var res WriteResult
	err := s.pool.QueryRow(ctx, `SELECT r.state, coalesce(sum(l.rows), 0)::bigint, coalesce(sum(l.bytes), 0)::bigint
		FROM run r LEFT JOIN task_load l ON l.job_uid = r.job_uid
		WHERE r.job_uid = $1 GROUP BY r.state`, jobUID).Scan(&state, &res.Rows, &res.Bytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return WriteResult{}, fmt.Errorf("store: run %s: %w", jobUID, ErrNotCommitted)
	}
	if err != nil {
		return WriteResult{}, fmt.Errorf("store: committed rows: %w", err)
	}
	if State(state) != StateCommitted {
		return WriteResult{}, fmt.Errorf("store: run %s is %s: %w", jobUID, state, ErrNotCommitted)
	}
	return res, nil
}

// Totals sums committed records.
type Totals struct {
	Rows          int64
	Cost          float64
	UsageQuantity float64
}

// CommittedTotals sums the committed records of a domain, of one data source
// (or all: ""), of one month YYYY-MM (or all: ""). It reads what every reader
// reads: the cost view.
func (s *Store) CommittedTotals(ctx context.Context, domain, dataSource, month string) (Totals, error) {
	args := sqlArgs{domain}
	q := `SELECT count(*), coalesce(sum(cost), 0), coalesce(sum(usage_quantity), 0) FROM cost WHERE domain = $1`
	if dataSource != "" {
		q += " AND data_source = " + args.add(dataSource)
	}
	if month != "" {
		start, ok := parseMonth(month)
		if !ok {
			return Totals{}, fmt.Errorf("store: %q is not a month YYYY-MM", month)
		}
		q += " AND billed_date >= " + args.add(start) + "::date AND billed_date < " + args.add(start.AddDate(0, 1, 0)) + "::date"
	}
	var t Totals
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&t.Rows, &t.Cost, &t.UsageQuantity); err != nil {
		return Totals{}, fmt.Errorf("store: totals: %w", err)
	}
	return t, nil
}

// RunRecords returns the stored rows of a run (of one task when jobTaskUID is
// not empty), committed or not, ordered by billed date: for tests and
// diagnostics. Their JSON objects are in encoding/json's form (keys sorted, no
// spaces), not jsonb's.
func (s *Store) RunRecords(ctx context.Context, jobUID, jobTaskUID string) ([]Record, error) {
	args := sqlArgs{jobUID}
	q := `SELECT cost, coalesce(usage_quantity, 0), coalesce(usage_unit, ''), coalesce(provider, ''),
		coalesce(region_code, ''), coalesce(product, ''), coalesce(usage_type, ''), coalesce(resource, ''),
		coalesce(account_id, ''), tags, additional_info, data, to_char(billed_date, 'YYYY-MM-DD')
		FROM cost_record WHERE job_uid = $1`
	if jobTaskUID != "" {
		q += " AND job_task_uid = " + args.add(jobTaskUID)
	}
	q += " ORDER BY billed_date"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: records: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
		var r Record
		err := row.Scan(&r.Cost, &r.UsageQuantity, &r.UsageUnit, &r.Provider, &r.RegionCode, &r.Product,
			&r.UsageType, &r.Resource, &r.AccountID, &r.Tags, &r.AdditionalInfo, &r.Data, &r.BilledDate)
		for _, obj := range []*json.RawMessage{&r.Tags, &r.AdditionalInfo, &r.Data} {
			if err == nil && *obj != nil {
				var v any
				if err = json.Unmarshal(*obj, &v); err == nil {
					*obj, err = json.Marshal(v)
				}
			}
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: records: %w", err)
	}
	return recs, nil
}

// Package store owns the cost records in PostgreSQL: the schema and its
// migrations, the task writes, the run commits and rollbacks, the monthly rollup,
// the FOCUS view and retention. No SQL lives outside it.
//
// # Driver and migrations
//
// The driver is pgx v5 (pgxpool). The schema is a list of versioned SQL files
// embedded in the binary (migrations/00001_*.sql, ...) and applied by [Migrate]
// with goose v3's Provider API. goose rather than golang-migrate because its
// Provider takes the embedded fs.FS directly, runs each migration in its own
// transaction (a failed migration leaves the previous version, never a "dirty"
// version that golang-migrate makes someone repair by hand), and takes a
// session locker. Migrate holds a PostgreSQL advisory lock while it runs, so two
// manager replicas starting at once apply every migration exactly once. Its
// version table is cost_store_version (not goose's default), so the store can
// share a database with another goose user.
//
// # Schema
//
//   - cost_record: every field of SpaceONE's Cost (region_key, billed_month and
//     billed_year are generated columns) plus the run that loaded it (domain =
//     namespace, data_source, job and job_task names and UIDs). Partitioned by
//     RANGE on billed_date, one partition per month (cost_record_yYYYYmMM) made on
//     demand by cost_record_ensure_partition in a short transaction of its own
//     (CREATE TABLE + ATTACH PARTITION, which does not block writers or readers;
//     concurrent callers serialized by an advisory lock). Empty text fields are
//     stored as NULL, so region_key is NULL unless both provider and region_code
//     are set, as SpaceONE builds it.
//   - run: one row per Job UID with its state: open, committed or rolled_back.
//   - task_load: one row per JobTask UID: rows and bytes of its last attempt.
//   - task_rollup: the sums of each task's rows per month and dimensions, written
//     in the task's transaction; cost_monthly (SpaceONE's MonthlyCost) is rebuilt
//     from it for the months a commit touches.
//   - views: cost (records of committed runs only: what readers read) and
//     focus_cost (the same in FOCUS 1.2 column names).
//
// # Exactly once, and invisible until committed
//
// [Store.WriteTask] writes one attempt of a task in ONE transaction: it locks the
// task's task_load row (so two attempts of one task never interleave), deletes
// the rows of every earlier attempt of the task (also one that committed its
// transaction but died before reporting), COPYs the new rows and records the
// load. A pod killed mid-COPY aborts the transaction: nothing of it is left.
// Rows of a committed task transaction are still invisible to readers: the
// views show rows of committed runs only. [Store.Commit], in ONE transaction
// serialized per data source, deletes the other committed runs' rows inside the
// run's windows, flips the run to committed and rebuilds the rollup of the
// touched months; a reader's statement sees either the state before it or the
// state after it, so a month is never counted twice nor seen half-replaced.
// [Store.Rollback] deletes the run's rows. A write of a run that is no longer
// open is refused ([ErrRunClosed]), so a late pod cannot add rows to a
// finished run.
//
// A new month's partition is made on a one-connection pool of the Store's own,
// never in the task's transaction (the DDL locks would last as long as the
// task) and never from the task's pool (a full pool would wait on itself).
//
// # Use
//
//	// the manager, at start (any number of replicas):
//	err := store.Migrate(ctx, dsn)
//	s, err := store.Open(ctx, dsn)
//
//	// a task pod, once per attempt; next returns io.EOF at the end:
//	res, err := s.WriteTask(ctx, store.TaskRef{Domain: ns, DataSource: ds, DataSourceUID: dsUID,
//		Job: job, JobUID: jobUID, JobTask: task, JobTaskUID: taskUID, Attempt: podName}, next)
//	// errors.Is(err, store.ErrInvalidRecord): ERROR_INVALID_PLUGIN_DATA (the error names record and field)
//	// errors.Is(err, store.ErrRunClosed): the run ended; the pod is late
//
//	// the Job controller, when every task succeeded (the job's changed
//	// windows and every task's task_changed window):
//	err = s.Commit(ctx, store.RunRef{Domain: ns, DataSource: ds, Job: job, JobUID: jobUID}, windows)
//	// or on FAILURE, TIMEOUT, CANCELED:
//	err = s.Rollback(ctx, run)
//	// both are idempotent: after a restart, s.RunState(ctx, jobUID) says where the run is
//	// and the same call is simply made again. createdCount and bytes:
//	got, err := s.CommittedRows(ctx, jobUID)
//
//	// periodically, per DataSource:
//	_, err = s.ApplyRetention(ctx, ns, ds, retentionMonths, time.Now())
package store

package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// DefaultRetentionMonths is how many months of records a data source keeps
	// when it says nothing (SpaceONE's default).
	DefaultRetentionMonths = 12
	// RollupRetentionMonths is how many months of rollup a data source keeps.
	RollupRetentionMonths = 36
)

// RetentionResult is what ApplyRetention removed.
type RetentionResult struct {
	// KeptFrom is the first month kept, YYYY-MM.
	KeptFrom string
	// DeletedRows is the number of records deleted.
	DeletedRows int64
	// DeletedRollupRows is the number of rollup rows deleted (older than
	// RollupRetentionMonths).
	DeletedRollupRows int64
	// DroppedPartitions are the partitions dropped: empty and older than the
	// data of every data source.
	DroppedPartitions []string
}

// ApplyRetention deletes a data source's records older than keepMonths months
// (the month of now and the keepMonths-1 before it are kept; 0 means
// DefaultRetentionMonths) and its rollup rows older than RollupRetentionMonths,
// or keepMonths when that is longer (the rollup outlives the records, as
// SpaceONE's MonthlyCost does, and never goes first). Then it
// drops the month partitions that are left empty, older than the cutoff and
// older than every data source's records; a partition whose lock is not had
// within a second (writers busy) is left for the next time.
func (s *Store) ApplyRetention(ctx context.Context, domain, dataSource string, keepMonths int, now time.Time) (RetentionResult, error) {
	if domain == "" || dataSource == "" {
		return RetentionResult{}, errors.New("store: retention needs a domain and a data source")
	}
	if keepMonths < 0 {
		return RetentionResult{}, fmt.Errorf("store: retention of %d months", keepMonths)
	}
	if keepMonths == 0 {
		keepMonths = DefaultRetentionMonths
	}
	thisMonth := monthOf(now.UTC())
	cutoff := thisMonth.AddDate(0, -(keepMonths - 1), 0)
	// The rollup never goes before the records it sums.
	rollupCutoff := thisMonth.AddDate(0, -(max(RollupRetentionMonths, keepMonths) - 1), 0).Format("2006-01")
	res := RetentionResult{KeptFrom: cutoff.Format("2006-01")}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("store: retention: %w", err)
	}
	defer rollbackQuietly(tx)
	// Serialized with the data source's commits.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1::int4, hashtext($2))", CommitLockClass, domain+"/"+dataSource); err != nil {
		return res, fmt.Errorf("store: retention: %w", err)
	}
	tag, err := tx.Exec(ctx, `DELETE FROM cost_record WHERE domain = $1 AND data_source = $2 AND billed_date < $3::date`,
		domain, dataSource, cutoff)
	if err != nil {
		return res, fmt.Errorf("store: retention: delete records: %w", err)
	}
	res.DeletedRows = tag.RowsAffected()
	tag, err = tx.Exec(ctx, `DELETE FROM cost_monthly WHERE domain = $1 AND data_source = $2 AND billed_month < $3`,
		domain, dataSource, rollupCutoff)
	if err != nil {
		return res, fmt.Errorf("store: retention: delete rollup: %w", err)
	}
	res.DeletedRollupRows = tag.RowsAffected()
	if _, err := tx.Exec(ctx, `DELETE FROM task_rollup WHERE domain = $1 AND data_source = $2 AND billed_month < $3`,
		domain, dataSource, rollupCutoff); err != nil {
		return res, fmt.Errorf("store: retention: delete task sums: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("store: retention: %w", err)
	}

	dropped, err := s.dropEmptyPartitions(ctx, cutoff)
	res.DroppedPartitions = dropped
	if err != nil {
		return res, fmt.Errorf("store: retention: %w", err)
	}
	return res, nil
}

// partitions lists the month partitions of cost_record, oldest first.
func (s *Store) partitions(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'cost_record'::regclass`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if _, ok := partitionMonth(n); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out) // cost_record_yYYYYmMM sorts by month
	return out, nil
}

func partitionMonth(name string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(name, "cost_record_y")
	if !ok || len(rest) != 7 || rest[4] != 'm' {
		return time.Time{}, false
	}
	t, err := time.Parse("2006m01", rest)
	return t, err == nil
}

// dropEmptyPartitions drops, oldest first, the partitions before cutoff that
// are empty, stopping at the first one that holds a row: a partition is dropped
// only when it is older than every record.
func (s *Store) dropEmptyPartitions(ctx context.Context, cutoff time.Time) ([]string, error) {
	names, err := s.partitions(ctx)
	if err != nil {
		return nil, err
	}
	var dropped []string
	for _, name := range names {
		m, _ := partitionMonth(name)
		if m.AddDate(0, 1, 0).After(cutoff) {
			break
		}
		ok, err := s.dropIfEmpty(ctx, name)
		if err != nil {
			return dropped, err
		}
		if !ok {
			break
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}

// dropIfEmpty drops the partition if it has no row, under the partition lock
// and an ACCESS EXCLUSIVE lock on cost_record, waited for at most a second so
// readers queue behind it no longer than that. False: not empty, or busy.
func (s *Store) dropIfEmpty(ctx context.Context, name string) (bool, error) {
	ident := pgx.Identifier{name}.Sanitize()
	var has bool
	if err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident+")").Scan(&has); err != nil || has {
		return false, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer rollbackQuietly(tx)
	for _, sql := range []string{
		"SET LOCAL lock_timeout = '1s'",
		fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", partitionLockID),
		"LOCK TABLE cost_record IN ACCESS EXCLUSIVE MODE",
	} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
				return false, nil
			}
			return false, err
		}
	}
	if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+ident+")").Scan(&has); err != nil || has {
		return false, err
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
		return false, err
	}
	return true, tx.Commit(ctx)
}

package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// recordColumns are the columns a task write COPYs, in order.
var recordColumns = []string{
	"cost", "usage_quantity", "usage_unit", "provider", "region_code", "product", "usage_type",
	"resource", "tags", "additional_info", "data", "billed_date", "account_id",
	"domain", "data_source", "data_source_uid", "job", "job_uid", "job_task", "job_task_uid",
}

var rollupColumns = []string{
	"job_uid", "job_task_uid", "domain", "data_source", "billed_month", "account_id", "provider",
	"region_code", "product", "usage_type", "usage_unit", "cost", "usage_quantity", "data", "rows",
}

// WriteTask writes one attempt of a task: it calls next for batches of records
// until next returns io.EOF (with or without a last batch) and COPYs them, all
// in one transaction that first deletes the rows of every earlier attempt of the
// task. So a killed attempt leaves nothing, and a retried task ends with the
// rows of its last attempt exactly once, also when an earlier attempt committed
// its rows but died before reporting. Two attempts of one task never
// interleave: the later one waits for the earlier one's transaction.
//
// The rows stay invisible to readers until the run commits. A record that
// cannot be stored fails the write with an error matching ErrInvalidRecord that
// names it and its field; a write to a run that is committed or rolled back
// fails with ErrRunClosed; an error of next is returned as is (wrapped).
func (s *Store) WriteTask(ctx context.Context, ref TaskRef, next func(context.Context) ([]Record, error)) (WriteResult, error) {
	if err := ref.validate(); err != nil {
		return WriteResult{}, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w", ref.JobTask, err)
	}
	defer rollbackQuietly(tx)

	state, err := lockRun(ctx, tx, ref.run(), "FOR SHARE")
	if err != nil {
		return WriteResult{}, err
	}
	if state != StateOpen {
		return WriteResult{}, fmt.Errorf("store: write task %s: run %s is %s: %w", ref.JobTask, ref.JobUID, state, ErrRunClosed)
	}
	// Taking the task's row serializes the attempts of the task.
	var owner string
	if err := tx.QueryRow(ctx, `INSERT INTO task_load (job_task_uid, job_uid, job_task, attempt) VALUES ($1, $2, $3, $4)
		ON CONFLICT (job_task_uid) DO UPDATE SET attempt = EXCLUDED.attempt, started_at = now()
		RETURNING job_uid`, ref.JobTaskUID, ref.JobUID, ref.JobTask, ref.Attempt).Scan(&owner); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w", ref.JobTask, err)
	}
	if owner != ref.JobUID {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w: task uid %s belongs to run %s", ref.JobTask, ErrRunConflict, ref.JobTaskUID, owner)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM cost_record WHERE job_uid = $1 AND job_task_uid = $2`, ref.JobUID, ref.JobTaskUID); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: delete earlier attempts: %w", ref.JobTask, err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM task_rollup WHERE job_uid = $1 AND job_task_uid = $2`, ref.JobUID, ref.JobTaskUID); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: delete earlier attempts: %w", ref.JobTask, err)
	}

	w := &taskWriter{
		s: s, tx: tx, ref: ref, next: next,
		partitions: map[time.Time]bool{},
		rollup:     map[rollupKey]*rollupSum{},
		numbers:    map[string]float64{},
		row:        make([]any, len(recordColumns)),
	}
	if err := w.run(ctx); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w", ref.JobTask, err)
	}
	if err := w.writeRollup(ctx); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w", ref.JobTask, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE task_load SET rows = $2, bytes = $3, loaded_at = now() WHERE job_task_uid = $1`,
		ref.JobTaskUID, w.rows, w.bytes); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: %w", ref.JobTask, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return WriteResult{}, fmt.Errorf("store: write task %s: commit: %w", ref.JobTask, err)
	}
	return WriteResult{Rows: w.rows, Bytes: w.bytes}, nil
}

type rollupKey struct {
	month, account, provider, region, product, usageType, usageUnit string
}

type rollupSum struct {
	cost, usage float64
	data        map[string]float64
	rows        int64
}

// prepared is a validated record with its billed date.
type prepared struct {
	rec  *Record
	date time.Time
}

// taskWriter streams the batches of one attempt into COPY statements. One COPY
// runs until a batch brings a month with no partition yet: the partition is
// made (in a transaction of its own) and a new COPY goes on.
type taskWriter struct {
	s    *Store
	tx   pgx.Tx
	ref  TaskRef
	next func(context.Context) ([]Record, error)

	partitions map[time.Time]bool
	rollup     map[rollupKey]*rollupSum
	numbers    map[string]float64 // a record's data.* numbers, reused

	batch   []prepared // the batch being copied
	pos     int        // the next record of batch to copy
	eof     bool
	srcErr  error // an error of next or of a record, which ended a COPY
	seen    int64 // records taken from next
	row     []any
	rows    int64
	bytes   int64
	pending bool // batch holds records not copied yet
}

func (w *taskWriter) run(ctx context.Context) error {
	for {
		if !w.pending {
			ok, err := w.fetch(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
		}
		if err := w.ensurePartitions(ctx); err != nil {
			return err
		}
		_, err := w.tx.CopyFrom(ctx, pgx.Identifier{"cost_record"}, recordColumns, copySource{w: w, ctx: ctx})
		if w.srcErr != nil {
			return w.srcErr
		}
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if w.eof && !w.pending {
			return nil
		}
	}
}

// fetch takes the next non-empty batch; false at the end of the stream.
func (w *taskWriter) fetch(ctx context.Context) (bool, error) {
	for !w.eof {
		recs, err := w.next(ctx)
		if errors.Is(err, io.EOF) {
			w.eof = true
		} else if err != nil {
			return false, fmt.Errorf("read records: %w", err)
		}
		if len(recs) == 0 {
			continue
		}
		if err := w.prepare(recs); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

func (w *taskWriter) prepare(recs []Record) error {
	w.batch = w.batch[:0]
	for i := range recs {
		r := &recs[i]
		idx := w.seen
		w.seen++
		d, err := r.billedDate()
		if err == nil {
			err = r.checkNumbers()
		}
		if err == nil {
			err = r.checkText()
		}
		if err == nil {
			err = r.checkObjects()
		}
		p := prepared{rec: r, date: d}
		if err != nil {
			var ie *InvalidRecordError
			if errors.As(err, &ie) {
				ie.Index = idx
			}
			return err
		}
		w.batch = append(w.batch, p)
		w.account(&p)
	}
	w.pos = 0
	w.pending = len(w.batch) > 0
	return nil
}

// account adds a record to the task's sums and sizes.
func (w *taskWriter) account(p *prepared) {
	r := p.rec
	w.rows++
	w.bytes += 8 + 8 + 4 + int64(len(r.UsageUnit)+len(r.Provider)+len(r.RegionCode)+len(r.Product)+
		len(r.UsageType)+len(r.Resource)+len(r.AccountID)+len(r.Tags)+len(r.AdditionalInfo)+len(r.Data))
	k := rollupKey{
		month: p.date.Format("2006-01"), account: r.AccountID, provider: r.Provider, region: r.RegionCode,
		product: r.Product, usageType: r.UsageType, usageUnit: r.UsageUnit,
	}
	sum := w.rollup[k]
	if sum == nil {
		sum = &rollupSum{}
		w.rollup[k] = sum
	}
	sum.cost += r.Cost
	sum.usage += r.UsageQuantity
	sum.rows++
	objectNumbers(r.Data, w.numbers, func(key string, f float64) {
		if sum.data == nil {
			sum.data = map[string]float64{}
		}
		sum.data[key] += f
	})
}

func monthOf(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC) }

// batchReady reports whether every month of the current batch has a partition.
func (w *taskWriter) batchReady() bool {
	for i := w.pos; i < len(w.batch); i++ {
		if !w.partitions[monthOf(w.batch[i].date)] {
			return false
		}
	}
	return true
}

// ensurePartitions makes the partitions of the current batch's months, each in
// a short transaction of its own on the store's DDL connection (never in the task's
// transaction, which would hold the DDL locks until its end), then locks them in
// the task's transaction: that keeps them from being dropped before the commit
// and makes the task's session see them.
func (w *taskWriter) ensurePartitions(ctx context.Context) error {
	for i := w.pos; i < len(w.batch); i++ {
		m := monthOf(w.batch[i].date)
		if w.partitions[m] {
			continue
		}
		var name string
		if err := w.s.ddl.QueryRow(ctx, `SELECT cost_record_ensure_partition($1::date)`, m).Scan(&name); err != nil {
			return fmt.Errorf("make the partition of %s: %w", m.Format("2006-01"), err)
		}
		if _, err := w.tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{name}.Sanitize()+" IN ROW EXCLUSIVE MODE"); err != nil {
			return fmt.Errorf("lock the partition %s: %w", name, err)
		}
		w.partitions[m] = true
	}
	return nil
}

// copySource feeds one COPY: the current batch, then the next batches while
// their months have partitions.
type copySource struct {
	w   *taskWriter
	ctx context.Context
}

func (c copySource) Next() bool {
	w := c.w
	if w.pos < len(w.batch) {
		return true
	}
	w.pending = false
	ok, err := w.fetch(c.ctx)
	if err != nil {
		w.srcErr = err
		return false
	}
	if !ok {
		return false
	}
	// A month with no partition yet ends this COPY; run makes it and goes on.
	return w.batchReady()
}

func (c copySource) Values() ([]any, error) {
	w := c.w
	p := &w.batch[w.pos]
	w.pos++
	r := p.rec
	row := w.row
	row[0] = r.Cost
	row[1] = r.UsageQuantity
	row[2] = nullIfEmpty(r.UsageUnit)
	row[3] = nullIfEmpty(r.Provider)
	row[4] = nullIfEmpty(r.RegionCode)
	row[5] = nullIfEmpty(r.Product)
	row[6] = nullIfEmpty(r.UsageType)
	row[7] = nullIfEmpty(r.Resource)
	row[8] = jsonValue(r.Tags)
	row[9] = jsonValue(r.AdditionalInfo)
	row[10] = jsonValue(r.Data)
	row[11] = p.date
	row[12] = nullIfEmpty(r.AccountID)
	row[13] = w.ref.Domain
	row[14] = w.ref.DataSource
	row[15] = nullIfEmpty(w.ref.DataSourceUID)
	row[16] = w.ref.Job
	row[17] = w.ref.JobUID
	row[18] = w.ref.JobTask
	row[19] = w.ref.JobTaskUID
	return row, nil
}

func (c copySource) Err() error { return c.w.srcErr }

func jsonValue(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

func (w *taskWriter) writeRollup(ctx context.Context) error {
	if len(w.rollup) == 0 {
		return nil
	}
	rows := make([][]any, 0, len(w.rollup))
	for k, sum := range w.rollup {
		data := []byte("{}")
		if len(sum.data) > 0 {
			var err error
			if data, err = json.Marshal(sum.data); err != nil {
				return fmt.Errorf("sum data: %w", err)
			}
		}
		rows = append(rows, []any{
			w.ref.JobUID, w.ref.JobTaskUID, w.ref.Domain, w.ref.DataSource, k.month,
			nullIfEmpty(k.account), nullIfEmpty(k.provider), nullIfEmpty(k.region), nullIfEmpty(k.product),
			nullIfEmpty(k.usageType), nullIfEmpty(k.usageUnit), sum.cost, sum.usage, json.RawMessage(data), sum.rows,
		})
	}
	if _, err := w.tx.CopyFrom(ctx, pgx.Identifier{"task_rollup"}, rollupColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("write the task's sums: %w", err)
	}
	return nil
}

package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

// batchQueue is how many batches may wait between the plugin's stream and the
// store's COPY: enough to keep both busy, few enough to bound the memory.
const batchQueue = 4

// storeRecord is the one place a plugin's record becomes a store record.
// account is the task's account (accountID): CostInfo has no account_id.
func storeRecord(r plugin.CostRecord, account string) store.Record {
	return store.Record{
		Cost:           r.Cost,
		UsageQuantity:  r.UsageQuantity,
		UsageUnit:      r.UsageUnit,
		Provider:       r.Provider,
		RegionCode:     r.RegionCode,
		Product:        r.Product,
		UsageType:      r.UsageType,
		Resource:       r.Resource,
		AccountID:      account,
		Tags:           r.Tags,
		AdditionalInfo: r.AdditionalInfo,
		Data:           r.Data,
		BilledDate:     r.BilledDate,
	}
}

// accountID is the account of a task's records: the task options' "account_id"
// when it is a string (SpaceONE plugins that split a run per linked account put
// it there), else empty.
func accountID(taskOptions map[string]any) string {
	s, _ := taskOptions["account_id"].(string)
	return s
}

// streamError is a failure of the plugin's side, as it reaches WriteTask through
// next: the plugin's error, not the store's.
type streamError struct{ err error }

func (e *streamError) Error() string { return e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

// toStore streams the task's records into one store.WriteTask.
func (c *collection) toStore(ctx context.Context, cl *plugin.Client) (taskpod.Result, error) {
	st := c.cfg.Store
	var err error
	secrets := dsnSecrets(c.cfg.StoreDSN)
	if st == nil {
		c.logger.Info("Writing to the store", "store", store.Redact(c.cfg.StoreDSN), "dsn_from", c.cfg.dsnSource)
		if _, err := pgconn.ParseConfig(c.cfg.StoreDSN); err != nil {
			// pgx's message quotes the DSN; a broken one may keep its password.
			return c.fail(&Error{Code: ErrorStore, Err: fmt.Errorf(
				"the store DSN (%s) is not a PostgreSQL connection string (URL or key=value)", c.cfg.dsnSource)})
		}
		st, err = c.openStore(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return c.fail(canceled(ctx))
			}
			return c.fail(&Error{Code: ErrorStore, Err: scrubbed(
				fmt.Errorf("connecting to the store %s: %w", store.Redact(c.cfg.StoreDSN), err), secrets)})
		}
		defer st.Close()
	}
	res, err := c.write(ctx, st, cl)
	if err != nil {
		return c.fail(c.writeFailure(ctx, err, secrets))
	}
	return c.succeed(res.Rows, res.Bytes)
}

// write runs the plugin's stream in a goroutine that hands batches of records
// through a bounded queue to WriteTask, which pulls them with next. Either side's
// failure cancels the other, and write returns only when both have stopped.
func (c *collection) write(ctx context.Context, st *store.Store, cl *plugin.Client) (store.WriteResult, error) {
	size := c.cfg.BatchSize
	if size == 0 {
		size = DefaultBatchSize
	}
	account := accountID(c.cfg.Request.TaskOptions)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	queue := make(chan []store.Record, batchQueue)
	done := make(chan struct{})
	var streamErr error // set before queue is closed
	go func() {
		defer close(done)
		batch := make([]store.Record, 0, size)
		send := func() error {
			select {
			case queue <- batch:
				batch = make([]store.Record, 0, size) // the store holds the last one until the next
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		err := cl.GetData(ctx, c.cfg.Request, func(r plugin.CostRecord) error {
			batch = append(batch, storeRecord(r, account))
			c.records++
			if len(batch) == size {
				return send()
			}
			return nil
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		streamErr = err
		close(queue)
	}()
	recv := func(ctx context.Context) ([]store.Record, error) {
		select {
		case b, ok := <-queue:
			if !ok {
				if streamErr != nil {
					return nil, &streamError{streamErr}
				}
				return nil, io.EOF
			}
			return b, nil
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	stop := func(err error) {
		cancel(err)
		<-done
	}

	// The transaction opens when there is something to write (or the stream
	// ended empty: the write still replaces an earlier attempt's rows).
	first, err := recv(ctx)
	eof := errors.Is(err, io.EOF)
	if err != nil && !eof {
		stop(err)
		return store.WriteResult{}, err
	}
	next := func(ctx context.Context) ([]store.Record, error) {
		if first != nil {
			b := first
			first = nil
			return b, nil
		}
		if eof {
			return nil, io.EOF
		}
		return recv(ctx)
	}
	res, err := st.WriteTask(ctx, c.cfg.Task, next)
	stop(errWriteEnded)
	return res, err
}

// errWriteEnded is the cause of the stream's cancellation when the write ended
// first (it failed: a successful write has read the stream to its end).
var errWriteEnded = errors.New("the store write ended")

// writeFailure is the error reported for a failed write.
func (c *collection) writeFailure(ctx context.Context, err error, secrets []string) error {
	var se *streamError
	var ie *store.InvalidRecordError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &se):
		return se.err // the plugin's failure, classified by ErrorCode
	case ctx.Err() != nil:
		return canceled(ctx)
	case errors.As(err, &ie):
		return &Error{Code: ErrorInvalidPluginData, Err: ie}
	case errors.Is(err, store.ErrInvalidRecord):
		return &Error{Code: ErrorInvalidPluginData, Err: scrubbed(err, secrets)}
	case errors.Is(err, store.ErrRunClosed):
		return &Error{Code: ErrorRunClosed, Err: scrubbed(
			fmt.Errorf("the run ended before this task's rows were written (%w)", err), secrets)}
	case errors.As(err, &pe) && pe.Code == "42P01": // undefined_table
		return &Error{Code: ErrorStore, Err: scrubbed(
			fmt.Errorf("the store has no schema (the manager migrates it when it starts): %w", err), secrets)}
	default:
		return &Error{Code: ErrorStore, Err: scrubbed(fmt.Errorf("writing the task's rows to the store: %w", err), secrets)}
	}
}

func canceled(ctx context.Context) *Error {
	return &Error{Code: ErrorCanceled, Err: fmt.Errorf("the collector was stopped: %w", context.Cause(ctx))}
}

// dsnSecrets are the strings no message may show: the DSN and its password.
func dsnSecrets(dsn string) []string {
	if dsn == "" {
		return nil
	}
	secrets := []string{dsn}
	// Short passwords are not scrubbed: that would mangle every message for a
	// secret of two letters.
	if cfg, err := pgconn.ParseConfig(dsn); err == nil && len(cfg.Password) >= 4 {
		secrets = append(secrets, cfg.Password)
	}
	return secrets
}

// redactedError is an error whose message is scrubbed of secrets; errors.Is and
// errors.As still see the original.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func scrubbed(err error, secrets []string) error {
	msg := err.Error()
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return &redactedError{msg: msg, err: err}
}

// openStore connects to the run's store, trying again with a growing pause
// while it does not answer (a pod that just started, a database restarting)
// until DefaultStoreConnectTimeout. A refusal of the login is final at once.
func (c *collection) openStore(ctx context.Context) (*store.Store, error) {
	deadline := time.Now().Add(storeConnectTimeout)
	wait := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, storeConnectAttempt)
		st, err := store.Open(actx, c.cfg.StoreDSN)
		cancel()
		var pgErr *pgconn.PgError
		if err == nil || ctx.Err() != nil || errors.As(err, &pgErr) || time.Now().Add(wait).After(deadline) {
			return st, err
		}
		c.logger.Info("The store did not answer; trying again", "attempt", attempt, "in", wait.String())
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		wait = min(2*wait, 4*time.Second)
	}
}

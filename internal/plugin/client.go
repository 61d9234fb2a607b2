package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// Init calls DataSource.init and returns the plugin's metadata.
func (c *Client) Init(ctx context.Context, options map[string]any, domainID string) (map[string]any, error) {
	opts, err := toStruct("options", options)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", MethodInit, err)
	}
	req := &pluginpb.InitRequest{Options: opts, DomainId: domainID}
	var res *pluginpb.PluginInfo
	err = c.unary(ctx, MethodInit, func(ctx context.Context) (err error) {
		res, err = c.ds.Init(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	md := fromStruct(res.GetMetadata())
	if md == nil {
		md = map[string]any{}
	}
	return md, nil
}

// Verify calls DataSource.verify: nil means the plugin accepts the options and
// secret data.
func (c *Client) Verify(ctx context.Context, r VerifyRequest) error {
	opts, err := toStruct("options", r.Options)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", MethodVerify, err)
	}
	secret, err := toStruct("secret_data", r.SecretData)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", MethodVerify, err)
	}
	req := &pluginpb.PluginVerifyRequest{Options: opts, SecretData: secret, Schema: r.Schema, DomainId: r.DomainID}
	return c.unary(ctx, MethodVerify, func(ctx context.Context) error {
		_, err := c.ds.Verify(ctx, req)
		return err
	})
}

// GetTasks calls Job.get_tasks. A task without task_options, or a changed window
// whose dates are not dates, fails the call with a *MalformedError.
func (c *Client) GetTasks(ctx context.Context, r GetTasksRequest) (*TasksResult, error) {
	req := &pluginpb.GetTasksRequest{
		Schema: r.Schema, Start: r.Start, LastSynchronizedAt: r.LastSynchronizedAt, DomainId: r.DomainID,
	}
	var err error
	if req.Options, err = toStruct("options", r.Options); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", MethodGetTasks, err)
	}
	if req.SecretData, err = toStruct("secret_data", r.SecretData); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", MethodGetTasks, err)
	}
	for i, a := range r.LinkedAccounts {
		s, err := toStruct(fmt.Sprintf("linked_accounts[%d]", i), a)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: %w", MethodGetTasks, err)
		}
		req.LinkedAccounts = append(req.LinkedAccounts, s)
	}
	var res *pluginpb.TasksInfo
	err = c.unary(ctx, MethodGetTasks, func(ctx context.Context) (err error) {
		res, err = c.job.GetTasks(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	out, err := tasksResult(res)
	if err != nil {
		observeMalformed(MethodGetTasks)
		return nil, err
	}
	return out, nil
}

// GetLinkedAccounts calls Cost.get_linked_accounts.
func (c *Client) GetLinkedAccounts(ctx context.Context, r GetLinkedAccountsRequest) ([]Account, error) {
	req := &pluginpb.GetLinkedAccountsRequest{Schema: r.Schema, DomainId: r.DomainID}
	var err error
	if req.Options, err = toStruct("options", r.Options); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", MethodGetLinkedAccounts, err)
	}
	if req.SecretData, err = toStruct("secret_data", r.SecretData); err != nil {
		return nil, fmt.Errorf("plugin %s: %w", MethodGetLinkedAccounts, err)
	}
	var res *pluginpb.AccountsInfo
	err = c.unary(ctx, MethodGetLinkedAccounts, func(ctx context.Context) (err error) {
		res, err = c.cost.GetLinkedAccounts(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	accounts := make([]Account, 0, len(res.GetResults()))
	for i, a := range res.GetResults() {
		if a.GetAccountId() == "" {
			observeMalformed(MethodGetLinkedAccounts)
			return nil, &MalformedError{Method: MethodGetLinkedAccounts, Reason: fmt.Sprintf("results[%d]: account_id is empty", i)}
		}
		accounts = append(accounts, Account{AccountID: a.GetAccountId(), Name: a.GetName()})
	}
	return accounts, nil
}

// GetData calls Cost.get_data and hands each record to fn, in the order the plugin
// streams them, each converted and validated by CostRecordFromInfo. An error from fn
// stops the stream and is returned as it is. A record that breaks the data contract
// stops it too, and is a *MalformedError wrapping the record's *RecordError (the
// records before it have reached fn). A stream that breaks after the first record is
// an error, never retried (the records already handed to fn cannot be taken back);
// one that fails before it is retried like any call. Options.CallTimeout bounds the
// wait for each message of the stream.
func (c *Client) GetData(ctx context.Context, r GetDataRequest, fn func(CostRecord) error) error {
	req := &pluginpb.GetDataRequest{Schema: r.Schema, DomainId: r.DomainID}
	var err error
	if req.Options, err = toStruct("options", r.Options); err != nil {
		return fmt.Errorf("plugin %s: %w", MethodGetData, err)
	}
	if req.SecretData, err = toStruct("secret_data", r.SecretData); err != nil {
		return fmt.Errorf("plugin %s: %w", MethodGetData, err)
	}
	if req.TaskOptions, err = toStruct("task_options", r.TaskOptions); err != nil {
		return fmt.Errorf("plugin %s: %w", MethodGetData, err)
	}
	wait := c.opts.Backoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		started, err := c.getDataOnce(ctx, req, fn)
		if fnErr := (errFromFn{}); errors.As(err, &fnErr) {
			// The caller stopped the stream.
			observe(MethodGetData, codes.Canceled, time.Since(start))
			return fnErr.err
		}
		if err == nil {
			observe(MethodGetData, codes.OK, time.Since(start))
			return nil
		}
		if me := (*MalformedError)(nil); errors.As(err, &me) {
			observe(MethodGetData, codes.OK, time.Since(start))
			observeMalformed(MethodGetData)
			return me
		}
		var perr *Error
		if !errors.As(err, &perr) {
			return err
		}
		observe(MethodGetData, perr.Code, time.Since(start))
		perr.Attempts = attempt
		if started || !c.retryable(ctx, perr, attempt) || !c.pause(ctx, wait) {
			return perr
		}
		wait = min(2*wait, MaxBackoff)
	}
}

// errFromFn marks an error returned by the caller's fn.
type errFromFn struct{ err error }

func (e errFromFn) Error() string { return e.err.Error() }

// getDataOnce runs one get_data stream; started says whether any record reached fn.
// Its error is an *Error, an errFromFn or a *MalformedError (an invalid record).
func (c *Client) getDataOnce(ctx context.Context, req *pluginpb.GetDataRequest, fn func(CostRecord) error) (started bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var idle atomic.Bool
	timer := time.AfterFunc(c.opts.CallTimeout, func() { idle.Store(true); cancel() })
	defer timer.Stop()
	fail := func(err error) *Error {
		if idle.Load() && ctx.Err() == nil {
			return &Error{Method: MethodGetData, Code: codes.DeadlineExceeded,
				Message: fmt.Sprintf("no message from the plugin within the call timeout of %s", c.opts.CallTimeout)}
		}
		return callError(MethodGetData, ctx, err, c.opts.CallTimeout)
	}
	// The stream's messages are decoded from their wire bytes (costDecoder), not
	// by the protobuf runtime: the same rules, a fraction of the work.
	stream, err := c.conn.NewStream(sctx, &pluginpb.Cost_ServiceDesc.Streams[0], pluginpb.Cost_GetData_FullMethodName,
		grpc.ForceCodecV2(newRawCodec()))
	if err != nil {
		return false, fail(err)
	}
	if err := stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return false, fail(err)
	}
	if err := stream.CloseSend(); err != nil {
		return false, fail(err)
	}
	var dec costDecoder
	index := 0 // of the next record in the stream
	for {
		var msg rawMessage
		err := stream.RecvMsg(&msg)
		if !timer.Stop() && idle.Load() {
			return started, fail(context.DeadlineExceeded)
		}
		if errors.Is(err, io.EOF) {
			return started, nil
		}
		if err != nil {
			return started, fail(err)
		}
		n, err := dec.costsInfo(index, msg.b, fn)
		index += n
		started = started || n > 0
		if err != nil {
			if fnErr := (errFromFn{}); errors.As(err, &fnErr) {
				return started, fnErr
			}
			// An invalid record: a *RecordError.
			return started, &MalformedError{Method: MethodGetData, Reason: err.Error(), Err: err}
		}
		timer.Reset(c.opts.CallTimeout)
	}
}

// unary runs a unary call with the per-call deadline and the retries.
func (c *Client) unary(ctx context.Context, method string, call func(context.Context) error) error {
	wait := c.opts.Backoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, c.opts.CallTimeout)
		err := call(cctx)
		cancel()
		perr := callError(method, ctx, err, c.opts.CallTimeout)
		if perr == nil {
			observe(method, codes.OK, time.Since(start))
			return nil
		}
		observe(method, perr.Code, time.Since(start))
		perr.Attempts = attempt
		if !c.retryable(ctx, perr, attempt) || !c.pause(ctx, wait) {
			return perr
		}
		wait = min(2*wait, MaxBackoff)
	}
}

func (c *Client) retryable(ctx context.Context, err *Error, attempt int) bool {
	return err.Code == codes.Unavailable && attempt <= c.opts.Retries && ctx.Err() == nil
}

// reconnectStep is how often a pause wakes up a connection that failed.
const reconnectStep = 100 * time.Millisecond

// pause waits out the backoff d before a retry. When the connection itself failed,
// it keeps waking it up (gRPC's own reconnect backoff is much longer) and ends early
// once the connection is ready again, so a plugin that comes back is called at once.
// A plugin that answered Unavailable over a ready connection gets the full pause. It
// reports whether to retry (false when ctx ended).
func (c *Client) pause(ctx context.Context, d time.Duration) bool {
	pctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if c.conn.GetState() == connectivity.Ready {
		<-pctx.Done()
		return ctx.Err() == nil
	}
	for {
		c.conn.ResetConnectBackoff()
		step, stepCancel := context.WithTimeout(pctx, reconnectStep)
		c.conn.WaitForStateChange(step, c.conn.GetState())
		stepCancel()
		if c.conn.GetState() == connectivity.Ready || pctx.Err() != nil {
			return ctx.Err() == nil
		}
	}
}

// tasksResult converts and validates get_tasks' answer.
func tasksResult(res *pluginpb.TasksInfo) (*TasksResult, error) {
	malformed := func(format string, args ...any) error {
		return &MalformedError{Method: MethodGetTasks, Reason: fmt.Sprintf(format, args...)}
	}
	out := &TasksResult{Tasks: make([]Task, 0, len(res.GetTasks()))}
	for i, t := range res.GetTasks() {
		if t.GetTaskOptions() == nil {
			return nil, malformed("task %d: task_options is missing", i)
		}
		task := Task{Options: fromStruct(t.GetTaskOptions())}
		if tc := t.GetTaskChanged(); tc != nil {
			ch, err := changed(tc)
			if err != nil {
				return nil, malformed("task %d: task_changed: %v", i, err)
			}
			task.Changed = &ch
		}
		out.Tasks = append(out.Tasks, task)
	}
	for i, c := range res.GetChanged() {
		ch, err := changed(c)
		if err != nil {
			return nil, malformed("changed[%d]: %v", i, err)
		}
		out.Changed = append(out.Changed, ch)
	}
	for _, a := range res.GetSyncedAccounts() {
		out.SyncedAccounts = append(out.SyncedAccounts, Account{AccountID: a.GetAccountId(), Name: a.GetName()})
	}
	return out, nil
}

func changed(c *pluginpb.ChangedInfo) (Changed, error) {
	ch := Changed{Start: c.GetStart(), End: c.GetEnd(), Filter: fromStruct(c.GetFilter())}
	if err := ValidateWindow(ch.Start, ch.End); err != nil {
		return Changed{}, err
	}
	return ch, nil
}

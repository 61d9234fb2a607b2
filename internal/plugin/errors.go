package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a failed plugin call: the plugin's gRPC code and message as it sent them,
// or the code of what stopped the call on this side (codes.Unavailable when the
// plugin cannot be reached, codes.DeadlineExceeded when it did not answer in time,
// codes.Canceled when the caller gave up).
type Error struct {
	// Method is the service and method, e.g. "Job.get_tasks".
	Method  string
	Code    codes.Code
	Message string
	// Attempts is how many times the call was tried.
	Attempts int
}

func (e *Error) Error() string {
	return fmt.Sprintf("plugin %s: %s: %s", e.Method, e.Code, e.Message)
}

// GRPCStatus lets status.FromError and status.Code see the plugin's code.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// IsUnavailable reports whether err is a plugin call that failed because the plugin
// could not be reached (after the retries).
func IsUnavailable(err error) bool { return CodeOf(err) == codes.Unavailable }

// IsDeadlineExceeded reports whether err is a plugin call that did not finish in time.
func IsDeadlineExceeded(err error) bool { return CodeOf(err) == codes.DeadlineExceeded }

// CodeOf is the gRPC code of a failed plugin call: codes.OK for nil, codes.Unknown
// for an error that is not an *Error.
func CodeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return codes.Unknown
}

// MalformedError is a plugin answer that breaks the protocol: a task without
// task_options, a changed window whose dates are not dates, a cost record without
// billed_date, ...
type MalformedError struct {
	Method string
	// Reason says what is wrong and where, e.g. "task 3: task_options is missing".
	Reason string
	// Err (optional) is the detailed error, e.g. the *RecordError of a get_data
	// record.
	Err error
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("plugin %s returned malformed data: %s", e.Method, e.Reason)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// callError turns what a gRPC call returned into an *Error. ctx is the caller's
// context; timeout the per-call deadline the attempt ran under.
func callError(method string, ctx context.Context, err error, timeout time.Duration) *Error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	e := &Error{Method: method, Code: st.Code(), Message: st.Message()}
	switch {
	case e.Code == codes.DeadlineExceeded && ctx.Err() == nil && callerDeadlineBound(ctx):
		// gRPC sends the caller's deadline to the server, which may give up and say so
		// a moment before the caller's own context is done: the caller's deadline it is.
		e.Message = fmt.Sprintf("the caller stopped waiting: %v", context.DeadlineExceeded)
	case e.Code == codes.DeadlineExceeded && ctx.Err() == nil:
		e.Message = fmt.Sprintf("no answer within the call timeout of %s (%s)", timeout, st.Message())
	case e.Code == codes.DeadlineExceeded || e.Code == codes.Canceled:
		if cerr := ctx.Err(); cerr != nil {
			e.Message = fmt.Sprintf("the caller stopped waiting: %v", context.Cause(ctx))
		}
	}
	return e
}

// deadlineSlack is how far apart the caller's deadline and the end of a call can be for
// a DeadlineExceeded to be the caller's: the server's and the client's timers fire at
// almost the same time, in either order.
const deadlineSlack = 50 * time.Millisecond

// callerDeadlineBound reports whether ctx's deadline has (all but) passed.
func callerDeadlineBound(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && time.Until(dl) < deadlineSlack
}

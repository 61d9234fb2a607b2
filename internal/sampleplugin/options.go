package sampleplugin

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// The plugin options (the DataSource's spec.plugin.options) the sample plugin reads.
const (
	// OptAccounts (list of strings) are the billing accounts; default the
	// request's linked_accounts, else ["account-a"].
	OptAccounts = "accounts"
	// OptNow ("YYYY-MM") is the current month, instead of the clock's.
	OptNow = "now"
	// OptResyncMonths (number, default 1) is how many months before the month of
	// last_synchronized_at a run re-collects, as SpaceONE plugins re-sync a window.
	OptResyncMonths = "resync_months"
	// OptTasks (number) makes get_tasks return exactly that many tasks, with
	// task_options {"index", "account_id", "month"} and no task_changed: for scale
	// tests. 0 means no tasks.
	OptTasks = "tasks"
	// OptRecordsPerTask (number, default 24) is how many records get_data streams
	// for a task; a task's own task_options may set it too.
	OptRecordsPerTask = "records_per_task"
	// OptBatchSize (number, default 10) is how many records go in one CostsInfo.
	OptBatchSize = "batch_size"
	// OptRequiredSecretKeys (list of strings, default ["api_key"]) are the keys
	// verify wants in secret_data, as non-empty strings; when the option is given,
	// get_data wants them too.
	OptRequiredSecretKeys = "required_secret_keys"
	// OptMalformedTasks (bool) adds a task without task_options to get_tasks' answer.
	OptMalformedTasks = "malformed_tasks"
	// OptMalformedChanged (bool) makes the run's changed window start "not-a-date".
	OptMalformedChanged = "malformed_changed"
	// OptFailGetDataAccounts (list of strings): get_data fails for tasks of these
	// accounts.
	OptFailGetDataAccounts = "fail_get_data_accounts"
	// OptFailGetDataAfter (number): get_data breaks its stream after sending that
	// many records.
	OptFailGetDataAfter = "fail_get_data_after"
	// OptFailCode (gRPC code name such as "UNAVAILABLE", "INVALID_ARGUMENT" or
	// "Unauthenticated"; default INTERNAL) is the code of every failure a fail_*
	// option causes.
	OptFailCode = "fail_code"

	// OptFailPrefix + method ("fail_get_tasks", "fail_verify", "fail_get_data",
	// "fail_init", "fail_get_linked_accounts"; a string) makes that method fail with
	// the string as message.
	OptFailPrefix = "fail_"
	// OptStallPrefix + method + OptStallSuffix ("stall_get_tasks_seconds",
	// "stall_get_data_seconds", ...; a number) makes that method wait that long
	// before it answers, or until the caller gives up.
	OptStallPrefix = "stall_"
	OptStallSuffix = "_seconds"
)

// maxTasks bounds a plan, so a typo cannot make the plugin eat the machine.
const maxTasks = 1_000_000

// knobs are the plugin options of a call.
type knobs map[string]any

func knobsOf(s *structpb.Struct) knobs {
	if s == nil {
		return knobs{}
	}
	return knobs(s.AsMap())
}

func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

func (k knobs) str(name string) (string, error) {
	v, ok := k[name]
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", invalid("option %q must be a string, not %T", name, v)
	}
	return s, nil
}

func (k knobs) boolean(name string) (bool, error) {
	v, ok := k[name]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, invalid("option %q must be a boolean, not %T", name, v)
	}
	return b, nil
}

// strings reads a list of strings; set says whether the option is there at all.
func (k knobs) strings(name string) (list []string, set bool, err error) {
	v, ok := k[name]
	if !ok || v == nil {
		return nil, false, nil
	}
	items, ok := v.([]any)
	if !ok {
		return nil, true, invalid("option %q must be a list of strings, not %T", name, v)
	}
	list = make([]string, 0, len(items))
	for i, it := range items {
		s, ok := it.(string)
		if !ok {
			return nil, true, invalid("option %q: item %d must be a string, not %T", name, i, it)
		}
		list = append(list, s)
	}
	return list, true, nil
}

func (k knobs) number(name string) (n float64, set bool, err error) {
	v, ok := k[name]
	if !ok || v == nil {
		return 0, false, nil
	}
	var f float64
	switch n := v.(type) {
	case float64: // what a Struct holds
		f = n
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	default:
		return 0, true, invalid("option %q must be a number, not %v", name, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, invalid("option %q must be a number, not %v", name, v)
	}
	return f, true, nil
}

// integer reads a whole number in [min, max], or def when it is absent.
func (k knobs) integer(name string, def, lo, hi int) (int, error) {
	f, set, err := k.number(name)
	if err != nil || !set {
		return def, err
	}
	if f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, invalid("option %q must be a whole number from %d to %d, not %v", name, lo, hi, f)
	}
	return int(f), nil
}

// failure is the error a fail_* option asks for.
func (k knobs) failure(msg string) error {
	code := codes.Internal
	name, err := k.str(OptFailCode)
	if err != nil {
		return err
	}
	if name != "" {
		c, ok := codeByName(name)
		if !ok {
			return invalid("option %q: %q is not a gRPC code name", OptFailCode, name)
		}
		code = c
	}
	return status.Error(code, msg)
}

// stallAndFail applies the stall_<method>_seconds and fail_<method> options.
func (k knobs) stallAndFail(ctx context.Context, method string) error {
	secs, set, err := k.number(OptStallPrefix + method + OptStallSuffix)
	if err != nil {
		return err
	}
	if set && secs > 0 {
		t := time.NewTimer(time.Duration(secs * float64(time.Second)))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	msg, err := k.str(OptFailPrefix + method)
	if err != nil {
		return err
	}
	if msg != "" {
		return k.failure(msg)
	}
	return nil
}

// codeByName reads "UNAVAILABLE", "Unavailable" or "unavailable".
func codeByName(name string) (codes.Code, bool) {
	want := strings.ToLower(strings.ReplaceAll(name, "_", ""))
	if want == "cancelled" { // gRPC's own spelling
		want = "canceled"
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.ToLower(c.String()) == want {
			return c, true
		}
	}
	return 0, false
}

// month is a calendar month.
type month struct {
	year int
	mon  time.Month
}

func monthOf(t time.Time) month { return month{t.Year(), t.Month()} }

func (m month) String() string { return fmt.Sprintf("%04d-%02d", m.year, int(m.mon)) }

func (m month) time() time.Time { return time.Date(m.year, m.mon, 1, 0, 0, 0, 0, time.UTC) }

func (m month) add(n int) month { return monthOf(m.time().AddDate(0, n, 0)) }

func (m month) before(o month) bool { return m.time().Before(o.time()) }

func (m month) days() int { return m.time().AddDate(0, 1, -1).Day() }

// parseMonth reads "YYYY-MM", "YYYY-MM-DD" or an RFC 3339 time.
func parseMonth(s string) (month, bool) {
	for _, l := range []string{"2006-01", "2006-01-02", time.RFC3339} {
		if t, err := time.Parse(l, s); err == nil {
			return monthOf(t.UTC()), true
		}
	}
	return month{}, false
}

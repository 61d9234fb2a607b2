package sampleplugin

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
)

// plan is get_tasks: one task per account and month from the first month to collect
// up to the current one (or exactly OptTasks tasks).
func plan(k knobs, req *pluginpb.GetTasksRequest, now time.Time) (*pluginpb.TasksInfo, error) {
	current, err := currentMonth(k, now)
	if err != nil {
		return nil, err
	}
	first, err := firstMonth(k, req, current)
	if err != nil {
		return nil, err
	}
	var linked []string
	for _, a := range req.GetLinkedAccounts() {
		if id, ok := a.AsMap()["account_id"].(string); ok && id != "" {
			linked = append(linked, id)
		}
	}
	accounts, err := accountsOf(k, linked)
	if err != nil {
		return nil, err
	}
	var months []month
	for m := first; !current.before(m); m = m.add(1) {
		months = append(months, m)
	}

	res := &pluginpb.TasksInfo{
		Changed: []*pluginpb.ChangedInfo{{Start: first.String()}},
	}
	for _, a := range accounts {
		res.SyncedAccounts = append(res.SyncedAccounts, &pluginpb.SyncedAccountInfo{AccountId: a, Name: accountName(a)})
	}

	n, err := k.integer(OptTasks, -1, 0, maxTasks)
	if err != nil {
		return nil, err
	}
	switch {
	case n >= 0:
		res.Tasks = make([]*pluginpb.TaskInfo, 0, n+1)
		for i := range n {
			acc, m := "account-a", months[0]
			if len(accounts) > 0 {
				acc = accounts[i%len(accounts)]
				m = months[(i/len(accounts))%len(months)]
			}
			res.Tasks = append(res.Tasks, &pluginpb.TaskInfo{TaskOptions: &structpb.Struct{Fields: map[string]*structpb.Value{
				"index":      structpb.NewNumberValue(float64(i)),
				"account_id": structpb.NewStringValue(acc),
				"month":      structpb.NewStringValue(m.String()),
			}}})
		}
	default:
		if len(accounts)*len(months) > maxTasks {
			return nil, status.Errorf(codes.InvalidArgument, "%d accounts over %d months is more than %d tasks", len(accounts), len(months), maxTasks)
		}
		res.Tasks = make([]*pluginpb.TaskInfo, 0, len(accounts)*len(months)+1)
		for _, a := range accounts {
			for _, m := range months {
				res.Tasks = append(res.Tasks, &pluginpb.TaskInfo{
					TaskOptions: &structpb.Struct{Fields: map[string]*structpb.Value{
						"account_id": structpb.NewStringValue(a),
						"month":      structpb.NewStringValue(m.String()),
					}},
					TaskChanged: &pluginpb.ChangedInfo{
						Start: m.String(), End: m.String(),
						Filter: &structpb.Struct{Fields: map[string]*structpb.Value{"account_id": structpb.NewStringValue(a)}},
					},
				})
			}
		}
	}

	if bad, err := k.boolean(OptMalformedTasks); err != nil {
		return nil, err
	} else if bad {
		res.Tasks = append(res.Tasks, &pluginpb.TaskInfo{TaskChanged: &pluginpb.ChangedInfo{Start: first.String()}})
	}
	if bad, err := k.boolean(OptMalformedChanged); err != nil {
		return nil, err
	} else if bad {
		res.Changed[0].Start = "not-a-date"
	}
	return res, nil
}

// currentMonth is OptNow's month, else the clock's.
func currentMonth(k knobs, now time.Time) (month, error) {
	s, err := k.str(OptNow)
	if err != nil || s == "" {
		return monthOf(now), err
	}
	m, ok := parseMonth(s)
	if !ok {
		return month{}, invalid("option %q must be YYYY-MM, not %q", OptNow, s)
	}
	return m, nil
}

// firstMonth is the request's start; else the month of last_synchronized_at less
// OptResyncMonths; else the current month.
func firstMonth(k knobs, req *pluginpb.GetTasksRequest, current month) (month, error) {
	if s := req.GetStart(); s != "" {
		m, ok := parseMonth(s)
		if !ok {
			return month{}, invalid("start must be YYYY-MM or YYYY-MM-DD, not %q", s)
		}
		if current.before(m) {
			return month{}, invalid("start %s is after the current month %s", m, current)
		}
		return m, nil
	}
	if s := req.GetLastSynchronizedAt(); s != "" {
		last, ok := parseMonth(s)
		if !ok {
			return month{}, invalid("last_synchronized_at must be an ISO 8601 time, not %q", s)
		}
		back, err := k.integer(OptResyncMonths, 1, 0, 1200)
		if err != nil {
			return month{}, err
		}
		m := last.add(-back)
		if current.before(m) {
			m = current // a clock ahead of ours
		}
		return m, nil
	}
	return current, nil
}

// accountsOf is OptAccounts, else the linked accounts, else ["account-a"].
func accountsOf(k knobs, linked []string) ([]string, error) {
	accounts, set, err := k.strings(OptAccounts)
	switch {
	case err != nil:
		return nil, err
	case set:
		return accounts, nil
	case len(linked) > 0:
		return linked, nil
	default:
		return []string{"account-a"}, nil
	}
}

func accountName(id string) string { return "Sample " + id }

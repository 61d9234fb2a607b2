package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/costops/cost-analysis-operator/internal/plugin"
	"github.com/costops/cost-analysis-operator/internal/plugin/pluginpb"
	"github.com/costops/cost-analysis-operator/internal/store"
	"github.com/costops/cost-analysis-operator/internal/store/pgtest"
	"github.com/costops/cost-analysis-operator/internal/taskpod"
)

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newStore is a migrated store on a database of the test's own, and its DSN.
func newStore(t testing.TB) (*store.Store, string) {
	t.Helper()
	dsn := pgtest.Start(t)
	ctx := testCtx(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(st.Close)
	return st, dsn
}

// sqlCount runs a query of one number on the test's database.
func sqlCount(t testing.TB, dsn, query string, args ...any) int64 {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// ident is the identity of one task of run job.
type ident struct{ job, task, pod string }

func (id ident) jobUID() string  { return id.job + "-uid" }
func (id ident) taskUID() string { return id.job + "/" + id.task + "-uid" }
func (id ident) run() store.RunRef {
	return store.RunRef{Domain: "tenant-a", DataSource: "billing", Job: id.job, JobUID: id.jobUID()}
}

// storeEnv is a task pod's environment with a store, as the JobTask controller
// sets it.
func storeEnv(endpoint, dsn string, id ident) map[string]string {
	env := taskEnv(endpoint, "/nonexistent")
	env[taskpod.EnvJobID] = id.job
	env[taskpod.EnvJobTaskID] = id.task
	env[taskpod.EnvJobUID] = id.jobUID()
	env[taskpod.EnvJobTaskUID] = id.taskUID()
	env[taskpod.EnvDataSourceUID] = "billing-uid"
	env[taskpod.EnvPodName] = id.pod
	env[taskpod.EnvStoreDSN] = dsn
	return env
}

// runStore runs a task from env through ConfigFromEnv and Run.
func runStore(t *testing.T, env map[string]string, batch int) (taskpod.Result, error) {
	t.Helper()
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.BatchSize = batch
	return Run(testCtx(t), cfg)
}

func storedRecords(t *testing.T, st *store.Store, id ident) []store.Record {
	t.Helper()
	recs, err := st.RunRecords(testCtx(t), id.jobUID(), id.taskUID())
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Resource < recs[j].Resource })
	return recs
}

// pluginRecords are the records the plugin at addr streams for the task of env.
func pluginRecords(t *testing.T, addr string, env map[string]string) []plugin.CostRecord {
	t.Helper()
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	pool := plugin.NewPool()
	defer pool.Close()
	cl, err := pool.Client(plugin.Options{Endpoint: addr})
	if err != nil {
		t.Fatal(err)
	}
	var recs []plugin.CostRecord
	if err := cl.GetData(testCtx(t), cfg.Request, func(r plugin.CostRecord) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Resource < recs[j].Resource })
	return recs
}

func TestTheStoreHoldsWhatThePluginStreamedFieldForField(t *testing.T) {
	st, dsn := newStore(t)
	addr := startPlugin(t)
	id := ident{"run", "run-0", "run-0-pod-a"}
	env := storeEnv(addr, dsn, id)
	env[taskpod.EnvPluginOptions] = `{"records_per_task":250,"batch_size":7}`

	res, err := runStore(t, env, 40)
	if err != nil || res.Failed() || res.CreatedCount == nil || *res.CreatedCount != 250 {
		t.Fatalf("result %+v, err %v", res, err)
	}
	want := pluginRecords(t, addr, env)
	got := storedRecords(t, st, id)
	if len(got) != len(want) || len(want) != 250 {
		t.Fatalf("%d rows stored, the plugin streamed %d", len(got), len(want))
	}
	for i, w := range want {
		exp := store.Record{
			Cost: w.Cost, UsageQuantity: w.UsageQuantity, UsageUnit: w.UsageUnit, Provider: w.Provider,
			RegionCode: w.RegionCode, Product: w.Product, UsageType: w.UsageType, Resource: w.Resource,
			AccountID: "a", // the task options' account_id
			Tags:      w.Tags, AdditionalInfo: w.AdditionalInfo, Data: w.Data, BilledDate: w.BilledDate,
		}
		if !reflect.DeepEqual(got[i], exp) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, got[i], exp)
		}
	}
	// The rows carry the task's identity.
	if n := sqlCount(t, dsn, `SELECT count(*) FROM cost_record WHERE domain = 'tenant-a' AND data_source = 'billing'
		AND data_source_uid = 'billing-uid' AND job = $1 AND job_task = $2`, id.job, id.task); n != 250 {
		t.Errorf("%d rows with the task's names, want 250", n)
	}
	// collected_bytes is what the store counted.
	if n := sqlCount(t, dsn, `SELECT bytes FROM task_load WHERE job_task_uid = $1`, id.taskUID()); n != res.CollectedBytes || n <= 0 {
		t.Errorf("collected_bytes %d, the store's load %d", res.CollectedBytes, n)
	}
}

func TestStoreRecordTakesTheAccountFromTheTaskOptions(t *testing.T) {
	rec := plugin.CostRecord{Cost: 1, Product: "EC2", BilledDate: "2024-02-01",
		AdditionalInfo: json.RawMessage(`{"account_id":"from-the-record"}`)}
	cases := map[string]struct {
		options map[string]any
		want    string
	}{
		"a string account_id is the account":      {map[string]any{"account_id": "1111"}, "1111"},
		"no account_id leaves it empty":           {map[string]any{"month": "2024-02"}, ""},
		"an account_id that is no string is none": {map[string]any{"account_id": 1111.0}, ""},
		"no task options at all":                  {nil, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := storeRecord(rec, accountID(tc.options))
			if got.AccountID != tc.want || got.Product != "EC2" || string(got.AdditionalInfo) != `{"account_id":"from-the-record"}` {
				t.Errorf("storeRecord = %+v, want account_id %q", got, tc.want)
			}
		})
	}
}

func TestARetriedTaskEndsWithItsRowsExactlyOnce(t *testing.T) {
	st, dsn := newStore(t)
	addr := startPlugin(t)
	attempt := func(pod, pluginOpts string) (taskpod.Result, error) {
		env := storeEnv(addr, dsn, ident{"retry", "retry-0", pod})
		env[taskpod.EnvPluginOptions] = pluginOpts
		return runStore(t, env, 5) // small batches: the COPY is under way when the stream breaks
	}
	id := ident{"retry", "retry-0", ""}
	attemptOf := func() string {
		var a string
		ctx := testCtx(t)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_ = conn.QueryRow(ctx, `SELECT attempt FROM task_load WHERE job_task_uid = $1`, id.taskUID()).Scan(&a)
		return a
	}

	// The first attempt's plugin breaks its stream after 37 records.
	res, err := attempt("pod-1", `{"records_per_task":60,"fail_get_data_after":37}`)
	if err == nil || res.ErrorCode != ErrorGetData || !strings.Contains(res.ErrorMessage, "after 37 records") {
		t.Fatalf("first attempt: %+v, %v", res, err)
	}
	if got := storedRecords(t, st, id); len(got) != 0 || attemptOf() != "" {
		t.Fatalf("the failed attempt left %d rows (attempt %q)", len(got), attemptOf())
	}
	// The second succeeds.
	res, err = attempt("pod-2", `{"records_per_task":60}`)
	if err != nil || *res.CreatedCount != 60 {
		t.Fatalf("second attempt: %+v, %v", res, err)
	}
	// A third (the second stored its rows but its pod died before reporting)
	// replaces them.
	res, err = attempt("pod-3", `{"records_per_task":60}`)
	if err != nil || *res.CreatedCount != 60 {
		t.Fatalf("third attempt: %+v, %v", res, err)
	}
	got := storedRecords(t, st, id)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Resource] = true
	}
	if len(got) != 60 || len(seen) != 60 || attemptOf() != "pod-3" {
		t.Fatalf("%d rows (%d distinct) of attempt %q, want the 60 of pod-3 once", len(got), len(seen), attemptOf())
	}
	if err := st.Commit(testCtx(t), id.run(), nil); err != nil {
		t.Fatal(err)
	}
	if tot, err := st.CommittedTotals(testCtx(t), "tenant-a", "billing", ""); err != nil || tot.Rows != 60 {
		t.Fatalf("committed %+v, %v; want 60 rows", tot, err)
	}
}

// gatedPlugin streams records numbered from 0, batch to a message; the first
// holdCalls calls stop after holdAfter records until release is closed (or their
// stream ends).
type gatedPlugin struct {
	pluginpb.UnimplementedCostServer
	records, batch, holdAfter int
	holdCalls                 int32

	calls      atomic.Int32
	held       chan struct{} // closed when a call holds
	release    chan struct{} // closed by the test: held calls go on
	canceled   chan struct{} // closed when a call's stream was canceled
	cancelOnce sync.Once
}

func (p *gatedPlugin) GetData(_ *pluginpb.GetDataRequest, stream grpc.ServerStreamingServer[pluginpb.CostsInfo]) error {
	ctx := stream.Context()
	hold := p.calls.Add(1) <= p.holdCalls
	for i := 0; i < p.records; {
		if hold && i >= p.holdAfter {
			hold = false
			close(p.held)
			select {
			case <-p.release:
			case <-ctx.Done():
			}
		}
		msg := &pluginpb.CostsInfo{}
		for ; i < p.records && len(msg.Results) < p.batch; i++ {
			ci := record(i)
			ci.Resource = fmt.Sprintf("r-%06d", i)
			msg.Results = append(msg.Results, ci)
		}
		err := ctx.Err()
		if err == nil {
			err = stream.Send(msg)
		}
		if err != nil {
			if ctx.Err() != nil {
				p.cancelOnce.Do(func() { close(p.canceled) })
			}
			return err
		}
	}
	return nil
}

func startGatedPlugin(t *testing.T, p *gatedPlugin) string {
	t.Helper()
	p.held, p.release, p.canceled = make(chan struct{}), make(chan struct{}), make(chan struct{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pluginpb.RegisterCostServer(s, p)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

const activeCopy = `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	AND query ILIKE 'copy%cost_record%' AND state = 'active'`

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestACollectorKilledMidCOPYLeavesNothingAndTheRetryStoresOnce(t *testing.T) {
	st, dsn := newStore(t)
	const records = 5000
	p := &gatedPlugin{records: records, batch: 100, holdAfter: 3000, holdCalls: 1}
	addr := startGatedPlugin(t, p)
	id := ident{"killed", "killed-0", "pod-1"}

	// The first attempt is the test binary as a task pod, running Main.
	term := filepath.Join(t.TempDir(), "termination-log")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", EnvTerminationMessagePath+"="+term, EnvBatchSize+"=500")
	for k, v := range storeEnv(addr, dsn, id) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	select {
	case <-p.held:
	case <-time.After(30 * time.Second):
		t.Fatalf("the plugin was never called to its hold; collector log: %s", stderr.String())
	}
	// The write transaction is open and its COPY has sent rows.
	waitFor(t, "the collector's COPY", func() bool {
		return sqlCount(t, dsn, activeCopy) == 1 &&
			sqlCount(t, dsn, `SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE datname = current_database()`) > 0
	})
	copied := sqlCount(t, dsn, `SELECT max(tuples_processed) FROM pg_stat_progress_copy WHERE datname = current_database()`)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	t.Logf("killed the collector with %d rows copied in its open transaction", copied)
	if _, err := os.Stat(term); err == nil {
		t.Errorf("the killed collector wrote a termination message")
	}
	// The server aborts the dead session's transaction.
	waitFor(t, "the killed session to end", func() bool {
		return sqlCount(t, dsn, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND query ILIKE 'copy%cost_record%'`) == 0
	})
	if got := storedRecords(t, st, id); len(got) != 0 {
		t.Fatalf("the killed attempt left %d rows", len(got))
	}
	if n := sqlCount(t, dsn, `SELECT count(*) FROM task_load WHERE job_task_uid = $1`, id.taskUID()); n != 0 {
		t.Fatalf("the killed attempt left its load (%d)", n)
	}

	// The retry (a new pod) streams all of them.
	id.pod = "pod-2"
	res := runMain(t, storeEnv(addr, dsn, id))
	if res.exit != 0 || res.msg.CreatedCount == nil || *res.msg.CreatedCount != records {
		t.Fatalf("the retry: exit %d, result %s, stderr %s", res.exit, res.raw, res.stderr)
	}
	got := storedRecords(t, st, id)
	for i, r := range got {
		if r.Resource != fmt.Sprintf("r-%06d", i) {
			t.Fatalf("row %d is %s: the rows are not the %d records once each", i, r.Resource, records)
		}
	}
	if len(got) != records {
		t.Fatalf("%d rows after the retry, want %d", len(got), records)
	}
}

// pgx notices a dead connection mid-COPY when it next has rows to send, so the
// failure shows when the plugin sends again; then the plugin's stream is canceled.
func TestAFailedStoreWriteCancelsThePluginStream(t *testing.T) {
	_, dsn := newStore(t)
	p := &gatedPlugin{records: 10_000_000, batch: 50, holdAfter: 200, holdCalls: 1}
	addr := startGatedPlugin(t, p)
	env := storeEnv(addr, dsn, ident{"cut", "cut-0", "pod-1"})
	type outcome struct {
		res taskpod.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			done <- outcome{err: err}
			return
		}
		cfg.BatchSize = 50
		res, err := Run(context.Background(), cfg)
		done <- outcome{res, err}
	}()
	<-p.held
	waitFor(t, "the collector's COPY", func() bool { return sqlCount(t, dsn, activeCopy) == 1 })
	// The database drops the collector's connection mid-COPY.
	if n := sqlCount(t, dsn, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND query ILIKE 'copy%cost_record%'`); n != 1 {
		t.Fatalf("terminated %d sessions", n)
	}
	close(p.release)
	select {
	case o := <-done:
		if o.err == nil || o.res.ErrorCode != ErrorStore || o.res.CreatedCount != nil {
			t.Fatalf("result %+v, err %v; want %s", o.res, o.err, ErrorStore)
		}
		if strings.Contains(o.res.ErrorMessage, dsn) {
			t.Errorf("the message shows the DSN: %s", o.res.ErrorMessage)
		}
		t.Logf("message: %s", o.res.ErrorMessage)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its store connection died")
	}
	// Run returned only after the plugin's stream was canceled.
	select {
	case <-p.canceled:
	case <-time.After(10 * time.Second):
		t.Fatal("the plugin's stream goes on after the write failed")
	}
}

func TestACanceledCollectorStoresNothing(t *testing.T) {
	st, dsn := newStore(t)
	p := &gatedPlugin{records: 1000, batch: 50, holdAfter: 300, holdCalls: 1}
	addr := startGatedPlugin(t, p)
	id := ident{"stop", "stop-0", "pod-1"}
	env := storeEnv(addr, dsn, id)
	cfg, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.BatchSize = 100
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-p.held
		// cancel (SIGTERM) once the COPY is under way; sqlCount is not for this
		// goroutine (it may fail the test).
		conn, err := pgx.Connect(ctx, dsn)
		if err == nil {
			defer conn.Close(context.Background())
			for n := 0; n == 0 && ctx.Err() == nil; time.Sleep(10 * time.Millisecond) {
				_ = conn.QueryRow(ctx, activeCopy).Scan(&n)
			}
		}
		cancel()
	}()
	res, err := Run(ctx, cfg)
	if err == nil || res.ErrorCode != ErrorCanceled {
		t.Fatalf("result %+v, err %v; want %s", res, err, ErrorCanceled)
	}
	if got := storedRecords(t, st, id); len(got) != 0 {
		t.Fatalf("a canceled attempt left %d rows", len(got))
	}
	select {
	case <-p.canceled:
	default:
		t.Fatal("Run returned with the plugin's stream still open")
	}
}

func TestALateTaskIsErrorRunClosed(t *testing.T) {
	cases := map[string]func(st *store.Store, run store.RunRef) error{
		"the run was rolled back": func(st *store.Store, run store.RunRef) error {
			return st.Rollback(context.Background(), run)
		},
		"the run was committed": func(st *store.Store, run store.RunRef) error {
			return st.Commit(context.Background(), run, nil)
		},
	}
	for name, end := range cases {
		t.Run(name, func(t *testing.T) {
			st, dsn := newStore(t)
			addr := startPlugin(t)
			id := ident{"late", "late-0", "pod-1"}
			if err := end(st, id.run()); err != nil {
				t.Fatal(err)
			}
			res := runMain(t, storeEnv(addr, dsn, id))
			if res.exit != 1 || res.msg.ErrorCode != ErrorRunClosed ||
				!strings.Contains(res.msg.ErrorMessage, "the run ended before this task's rows were written") {
				t.Fatalf("exit %d, result %s; want %s", res.exit, res.raw, ErrorRunClosed)
			}
			if got := storedRecords(t, st, id); len(got) != 0 {
				t.Fatalf("the late task stored %d rows", len(got))
			}
		})
	}
}

func TestAStoreThatCannotBeReachedIsErrorStore(t *testing.T) {
	// The collector tries again for storeConnectTimeout, then gives up.
	defer func(d time.Duration) { storeConnectTimeout = d }(storeConnectTimeout)
	storeConnectTimeout = 3 * time.Second
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	_ = lis.Close()
	const password = "s3cr3t-pass"
	dsn := fmt.Sprintf("postgres://collector:%s@127.0.0.1:%d/costs?sslmode=disable", password, port)
	addr := startPlugin(t)
	fromFile := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(fromFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(env map[string]string){
		"a DSN in the environment": func(map[string]string) {},
		"a DSN in a file":          func(env map[string]string) { env[taskpod.EnvStoreDSN] = ""; env[EnvStoreDSNFile] = fromFile },
		"a DSN that does not parse": func(env map[string]string) {
			env[taskpod.EnvStoreDSN] = "postgres://collector:" + password + "@127.0.0.1:notaport/costs"
		},
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			env := storeEnv(addr, dsn, ident{"down", "down-0", "pod-1"})
			edit(env)
			res := runMain(t, env)
			if res.exit != 1 || res.msg.ErrorCode != ErrorStore {
				t.Fatalf("exit %d, result %s; want %s", res.exit, res.raw, ErrorStore)
			}
			if tries := strings.Count(res.stderr, "The store did not answer; trying again"); name != "a DSN that does not parse" && tries < 2 {
				t.Errorf("the collector tried again %d times in %s, want a few:\n%s", tries, storeConnectTimeout, res.stderr)
			}
			if strings.Contains(res.raw, password) || strings.Contains(res.stderr, password) {
				t.Fatalf("the password shows:\nresult %s\nlog %s", res.raw, res.stderr)
			}
			if name != "a DSN that does not parse" && !strings.Contains(res.msg.ErrorMessage, fmt.Sprintf("127.0.0.1:%d", port)) {
				t.Errorf("the message does not name the store: %s", res.msg.ErrorMessage)
			}
		})
	}
}

func TestAStoreTaskNeedsItsIdentity(t *testing.T) {
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		env   map[string]string
		args  []string
		inMsg string
	}{
		"no domain":           {env: map[string]string{taskpod.EnvDomainID: ""}, inMsg: taskpod.EnvDomainID},
		"no data source":      {env: map[string]string{taskpod.EnvDataSourceID: ""}, inMsg: taskpod.EnvDataSourceID},
		"no data source uid":  {env: map[string]string{taskpod.EnvDataSourceUID: ""}, inMsg: taskpod.EnvDataSourceUID},
		"no job":              {env: map[string]string{taskpod.EnvJobID: ""}, inMsg: taskpod.EnvJobID},
		"no job uid":          {env: map[string]string{taskpod.EnvJobUID: " "}, inMsg: taskpod.EnvJobUID},
		"no job task":         {env: map[string]string{taskpod.EnvJobTaskID: ""}, inMsg: taskpod.EnvJobTaskID},
		"no job task uid":     {env: map[string]string{taskpod.EnvJobTaskUID: ""}, inMsg: taskpod.EnvJobTaskUID},
		"a DSN file missing":  {args: []string{"--store-dsn-file", "/nonexistent/dsn"}, inMsg: "/nonexistent/dsn"},
		"an empty DSN file":   {env: map[string]string{EnvStoreDSNFile: emptyFile}, inMsg: "is empty"},
		"a store and output":  {env: map[string]string{EnvOutput: "-"}, inMsg: "both a store and an output"},
		"a batch size of ten": {args: []string{"--batch-size", "ten"}, inMsg: "batch size"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := storeEnv("127.0.0.1:1", "postgres://collector:pw12345@127.0.0.1:1/costs", ident{"id", "id-0", "pod-1"})
			for k, v := range tc.env {
				env[k] = v
			}
			res := runMain(t, env, tc.args...)
			if res.exit != 1 || res.msg.ErrorCode != ErrorInvalidTask || !strings.Contains(res.msg.ErrorMessage, tc.inMsg) {
				t.Fatalf("exit %d, result %s; want %s naming %q", res.exit, res.raw, ErrorInvalidTask, tc.inMsg)
			}
			if strings.Contains(res.raw+res.stderr, "pw12345") {
				t.Errorf("the password shows: %s %s", res.raw, res.stderr)
			}
		})
	}
}

func TestConfigFromEnvReadsTheStore(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "dsn")
	if err := os.WriteFile(file, []byte("postgres://from-the-file/db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := storeEnv("plugin:50051", "postgres://from-the-env/db", ident{"run", "run-0", "run-0-abcde"})
	get := func(k string) string { return env[k] }
	cfg, err := ConfigFromEnv(get)
	if err != nil {
		t.Fatal(err)
	}
	want := store.TaskRef{Domain: "tenant-a", DataSource: "billing", DataSourceUID: "billing-uid",
		Job: "run", JobUID: "run-uid", JobTask: "run-0", JobTaskUID: "run/run-0-uid", Attempt: "run-0-abcde"}
	if cfg.StoreDSN != "postgres://from-the-env/db" || cfg.Task != want {
		t.Errorf("store %q, task %+v; want %+v", cfg.StoreDSN, cfg.Task, want)
	}
	// A DSN file wins over the environment variable.
	env[EnvStoreDSNFile] = file
	if cfg, err = ConfigFromEnv(get); err != nil || cfg.StoreDSN != "postgres://from-the-file/db" {
		t.Errorf("with a DSN file: store %q, err %v", cfg.StoreDSN, err)
	}
	// Without a store the identity is optional (a dry run).
	cfg, err = ConfigFromEnv(func(k string) string { return taskEnv("plugin:50051", dir)[k] })
	if err != nil || cfg.StoreDSN != "" {
		t.Errorf("without a store: %q, %v", cfg.StoreDSN, err)
	}
}

func TestMainStoresTheTaskAndReportsItsRows(t *testing.T) {
	st, dsn := newStore(t)
	addr := startPlugin(t)
	file := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(file, []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		id   ident
		edit func(env map[string]string)
		args []string
	}{
		"the DSN from the environment": {id: ident{"main", "main-0", "pod-1"}},
		"the DSN from a file": {id: ident{"main", "main-1", "pod-1"}, args: []string{"--store-dsn-file", file},
			edit: func(env map[string]string) { env[taskpod.EnvStoreDSN] = "" }},
		"a task with no records": {id: ident{"main", "main-2", "pod-1"},
			edit: func(env map[string]string) { env[taskpod.EnvPluginOptions] = `{"records_per_task":0}` }},
		// A pod of an Indexed batch Job: the file of its completion index is its
		// task, whatever the task's variables say.
		"the task from its task file": {id: ident{"main", "main-3", "pod-1"},
			edit: func(env map[string]string) {
				id := ident{"main", "main-3", "pod-1"}
				env[taskpod.EnvTasksDir] = tasksDir(t, map[string]string{"5": taskpod.Task{JobTaskID: id.task, JobTaskUID: id.taskUID(),
					Options: json.RawMessage(`{"account_id":"a","month":"2024-02"}`)}.Encode()})
				env[taskpod.EnvCompletionIndex] = "5"
				env[taskpod.EnvJobTaskID], env[taskpod.EnvJobTaskUID] = "main-0", ident{"main", "main-0", ""}.taskUID()
			}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := storeEnv(addr, dsn, tc.id)
			env[taskpod.EnvPluginOptions] = `{"records_per_task":2345,"batch_size":100}`
			if tc.edit != nil {
				tc.edit(env)
			}
			res := runMain(t, env, tc.args...)
			if res.exit != 0 || res.msg.Failed() || res.msg.CreatedCount == nil {
				t.Fatalf("exit %d, result %s, stderr %s", res.exit, res.raw, res.stderr)
			}
			if n := len(storedRecords(t, st, tc.id)); int64(n) != *res.msg.CreatedCount {
				t.Fatalf("created_count %d, %d rows stored", *res.msg.CreatedCount, n)
			}
			if res.stdout != "" {
				t.Errorf("records on stdout with a store: %.200s", res.stdout)
			}
			if strings.Contains(res.stderr, dsn) || !strings.Contains(res.stderr, `"job_task_id":"`+tc.id.task+`"`) {
				t.Errorf("the log shows the DSN or does not name the task: %s", res.stderr)
			}
		})
	}
}

func TestInvalidPluginDataFailsTheWriteAndStoresNothing(t *testing.T) {
	cases := map[string]struct {
		bad *pluginpb.CostInfo
		msg string
	}{
		"a billed_date that is not a date (the plugin client's check)": {
			bad: &pluginpb.CostInfo{Cost: 1, Product: "EC2", BilledDate: "2026-13-01", AdditionalInfo: account("1111")},
			msg: `record 23 (account 1111, product EC2): billed_date "2026-13-01" is not a date`},
		"a billed_date out of the store's range (the store's check)": {
			bad: &pluginpb.CostInfo{Cost: 1, Product: "EC2", BilledDate: "0000-02-01"},
			msg: `invalid cost record #23: billed_date: "0000-02-01" is out of range`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			st, dsn := newStore(t)
			var batches [][]*pluginpb.CostInfo
			for i := 0; i < 23; i += 5 {
				var b []*pluginpb.CostInfo
				for j := i; j < min(i+5, 23); j++ {
					b = append(b, record(j))
				}
				batches = append(batches, b)
			}
			batches = append(batches, []*pluginpb.CostInfo{tc.bad, record(99)})
			addr := startRawPlugin(t, batches...)
			id := ident{"bad", "bad-0", "pod-1"}
			res, err := runStore(t, storeEnv(addr, dsn, id), 5)
			if err == nil || res.ErrorCode != ErrorInvalidPluginData || !strings.HasPrefix(res.ErrorMessage, tc.msg) {
				t.Fatalf("result %+v; want %s: %s", res, ErrorInvalidPluginData, tc.msg)
			}
			if got := storedRecords(t, st, id); len(got) != 0 {
				t.Fatalf("%d rows stored of a task that failed", len(got))
			}
		})
	}
}

func TestWriteFailureCodes(t *testing.T) {
	secrets := dsnSecrets("postgres://u:hunter22@db:5432/costs")
	cases := map[string]struct {
		err  error
		code string
	}{
		"an invalid record":  {&store.InvalidRecordError{Index: 3, Field: "tags", Reason: "not JSON"}, ErrorInvalidPluginData},
		"a closed run":       {fmt.Errorf("store: write task t: %w", store.ErrRunClosed), ErrorRunClosed},
		"the plugin's error": {&streamError{&plugin.Error{Code: codes.Unavailable}}, ErrorPluginUnavailable},
		"anything else":      {fmt.Errorf("connection to postgres://u:hunter22@db:5432/costs reset"), ErrorStore},
	}
	c := &collection{}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.writeFailure(context.Background(), tc.err, secrets)
			if got := ErrorCode(err); got != tc.code {
				t.Errorf("code %s, want %s (%v)", got, tc.code, err)
			}
			if strings.Contains(err.Error(), "hunter22") {
				t.Errorf("the message shows the password: %v", err)
			}
		})
	}
}

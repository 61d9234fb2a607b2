package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

const killedWriterEnv = "STORE_TEST_KILLED_WRITER_DSN"

var killedRun = runRef("ns", "ds", "killed")

// writeUntilKilled is the process that gets killed: it writes a task and stops
// in the middle of the COPY, telling its parent so on stdout.
func writeUntilKilled(dsn string) int {
	ctx := context.Background()
	s, err := Open(ctx, dsn)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ref := taskRef(killedRun, "t1")
	ref.Attempt = "pod-killed"
	inner := batches(genRecords("killed", "2024-08", 10000), 100)
	n := 0
	_, err = s.WriteTask(ctx, ref, func(ctx context.Context) ([]Record, error) {
		if n++; n == 10 {
			fmt.Println("COPYING")
			select {} // until SIGKILL
		}
		return inner(ctx)
	})
	fmt.Println("ERROR the write ended:", err)
	return 1
}

func TestAWriterKilledMidCOPYLeavesNothingAndTheRetryLoadsOnce(t *testing.T) {
	s, dsn := newStoreDSN(t)
	ctx := testCtx(t)
	first := taskRef(killedRun, "t1")
	write(t, s, first, genRecords("first", "2024-08", 25)) // committed, never reported

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killedWriterEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "COPYING" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the writer said %q", line)
	}
	// The writer has handed its batches to the COPY; the server may take a moment
	// to show the statement in pg_stat_activity on a loaded machine.
	copying := func() int64 {
		return count(t, s, `SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'copy%cost_record%' AND state = 'active'`)
	}
	for wait := time.Now().Add(10 * time.Second); copying() != 1 && time.Now().Before(wait); {
		time.Sleep(20 * time.Millisecond)
	}
	if n := copying(); n != 1 {
		t.Errorf("%d COPYs in progress when the writer is killed, want 1", n)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	// The server aborts the dead session's transaction; wait for it to go.
	deadline := time.Now().Add(20 * time.Second)
	for count(t, s, `SELECT count(*) FROM pg_stat_activity WHERE query ILIKE 'copy%cost_record%'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the killed writer's session is still there")
		}
		time.Sleep(20 * time.Millisecond)
	}
	got, err := s.RunRecords(ctx, killedRun.JobUID, first.JobTaskUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 25 || !strings.HasPrefix(got[0].Resource, "first-") {
		t.Fatalf("after the kill the task has %d rows, want the first attempt's 25 and nothing of the killed one", len(got))
	}
	retry := first
	retry.Attempt = "pod-3"
	write(t, s, retry, genRecords("retry", "2024-08", 7))
	commit(t, s, killedRun)
	if tot, _ := s.CommittedTotals(ctx, "ns", "ds", ""); tot.Rows != 7 {
		t.Fatalf("%d rows committed, want the retry's 7 exactly once", tot.Rows)
	}
}

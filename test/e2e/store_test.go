package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
)

// storeTotals is what a reader of the store sees of a DataSource (the view cost:
// committed runs only), and how many rows of run jobUID the table holds,
// committed or not.
func storeTotals(t *testing.T, ns, ds, jobUID string) (rows int64, cost float64, runRows int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.StoreDSN)
	if err != nil {
		t.Fatalf("connecting to the store: %v", err)
	}
	defer conn.Close(ctx)
	// numeric: a sum of doubles depends on the order of the scan, which may change.
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(sum(cost::numeric), 0)::float8 FROM cost WHERE domain = $1 AND data_source = $2`,
		ns, ds).Scan(&rows, &cost); err != nil {
		t.Fatal(err)
	}
	if jobUID != "" {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM cost_record WHERE job_uid = $1`, jobUID).Scan(&runRows); err != nil {
			t.Fatal(err)
		}
	}
	return rows, cost, runRows
}

// The product's point, end to end: the sample Job's task pods run the collector on
// the real node, the records land in PostgreSQL, the Job's createdCount is what was
// committed, a second run of the same months replaces them, and a canceled run
// leaves the table as it was.
func TestRealRunsLandInTheStore(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	const records = 9
	k.createDataSource("billing", source{real: true,
		options:  map[string]any{"tasks": 3, "records_per_task": records},
		defaults: costv1.JobDefaults{Parallelism: ptr[int32](3)}})
	k.createJob("first", "billing")
	k.wait("cajob/first", "{.status.status}", "SUCCESS", 2*time.Minute)
	first := k.job("first")
	rows, cost, runRows := storeTotals(t, k.ns, "billing", string(first.UID))
	if first.Status.CreatedCount != 3*records || rows != 3*records || runRows != 3*records || cost <= 0 {
		t.Fatalf("first run: createdCount %d, store: %d committed rows (cost %.4f), %d rows of the run; want %d",
			first.Status.CreatedCount, rows, cost, runRows, 3*records)
	}
	if c := condition(first.Status.Conditions, costv1.ConditionStored); c == nil || c.Reason != costv1.ReasonCommitted {
		t.Errorf("first run: Stored %s, want Committed", fmtCond(c))
	}
	if m := first.Status.Metering; m == nil || first.Status.Store == nil || first.Status.Store.CommittedBytes == nil ||
		m.CollectedBytes != *first.Status.Store.CommittedBytes || m.CollectedBytes <= 0 {
		t.Errorf("first run: metering %+v, store %+v: want the committed bytes", m, first.Status.Store)
	}

	// The same months again: the sample plugin's changed window covers them.
	k.createJob("second", "billing")
	k.wait("cajob/second", "{.status.status}", "SUCCESS", 2*time.Minute)
	second := k.job("second")
	rows2, cost2, _ := storeTotals(t, k.ns, "billing", string(second.UID))
	_, _, left := storeTotals(t, k.ns, "billing", string(first.UID))
	if rows2 != second.Status.CreatedCount || rows2 != 3*records || left != 0 {
		t.Fatalf("second run: %d committed rows (createdCount %d), %d rows of the first run left; want %d and 0",
			rows2, second.Status.CreatedCount, left, 3*records)
	}

	// A run of the same source canceled while its task pods are in get_data (the
	// plugin now stalls there) leaves the table as it was.
	k.kubectl("patch", "cads/billing", "--type=merge", "-p", `{"spec":{"plugin":{"options":{"stall_get_data_seconds":120}}}}`)
	k.createJob("canceled", "billing")
	k.eventually(time.Minute, func() error {
		for _, p := range k.pods("canceled") {
			if p.Status.Phase == "Running" {
				return nil
			}
		}
		return fmt.Errorf("no task pod of the run is running yet")
	})
	k.kubectl("patch", "cajob/canceled", "--type=merge", "-p", `{"spec":{"cancel":true}}`)
	k.wait("cajob/canceled", "{.status.status}", "CANCELED", time.Minute)
	canceled := k.job("canceled")
	rows3, cost3, runRows3 := storeTotals(t, k.ns, "billing", string(canceled.UID))
	if rows3 != rows2 || cost3 != cost2 || runRows3 != 0 || canceled.Status.CreatedCount != 0 {
		t.Errorf("after the canceled run: %d committed rows (cost %.4f), %d rows of it, createdCount %d; want %d (cost %.4f), 0, 0",
			rows3, cost3, runRows3, canceled.Status.CreatedCount, rows2, cost2)
	}
	if c := condition(canceled.Status.Conditions, costv1.ConditionStored); c == nil || c.Reason != costv1.ReasonRolledBack {
		t.Errorf("canceled run: Stored %s, want RolledBack", fmtCond(c))
	}
}

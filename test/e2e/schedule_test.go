package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	costv1 "github.com/costops/cost-analysis-operator/api/v1"
	"github.com/costops/cost-analysis-operator/internal/schedule"
)

// A DataSource that syncs every minute, on the local control plane, with the
// real clock: the schedule creates its run, the run's task pods collect on the
// real node, the records land in PostgreSQL, and kubectl shows the next sync.
func TestScheduledSyncLandsInTheStore(t *testing.T) {
	requireRealNode(t)
	k := setup(t)
	t.Parallel()

	const records = 4
	k.createDataSource("nightly", source{real: true,
		options:  map[string]any{"tasks": 2, "records_per_task": records},
		defaults: costv1.JobDefaults{Parallelism: ptr[int32](2)},
		schedule: &costv1.ScheduleSpec{Cron: "* * * * *", TimeZone: ptr("Asia/Seoul")}})

	var run *costv1.Job
	k.eventually(3*time.Minute, func() error {
		var list costv1.JobList
		k.get(&list, "cajob", "-l", costv1.LabelCreatedBy+"="+costv1.CreatedBySchedule)
		for i := range list.Items {
			if j := &list.Items[i]; j.Status.Status == costv1.JobSuccess {
				run = j
				return nil
			}
		}
		return fmt.Errorf("no scheduled run has succeeded yet (%d scheduled Jobs)", len(list.Items))
	})
	at, err := time.Parse(time.RFC3339, run.Annotations[costv1.AnnotationScheduledAt])
	if err != nil || run.Name != schedule.JobName("nightly", at) {
		t.Fatalf("scheduled Job %s, scheduled-at %q: want the name of its scheduled time", run.Name, run.Annotations[costv1.AnnotationScheduledAt])
	}
	rows, _, runRows := storeTotals(t, k.ns, "nightly", string(run.UID))
	if run.Status.CreatedCount != 2*records || runRows != 2*records || rows < 2*records {
		t.Fatalf("scheduled run %s: createdCount %d, %d rows of it in the store (%d committed rows of the source); want %d",
			run.Name, run.Status.CreatedCount, runRows, rows, 2*records)
	}

	ds := k.dataSource("nightly")
	if ds.Status.NextScheduleTime == nil || !ds.Status.NextScheduleTime.After(at) || ds.Status.LastSuccessfulJob == nil {
		t.Fatalf("status: next %v, last successful %+v", ds.Status.NextScheduleTime, ds.Status.LastSuccessfulJob)
	}
	row := oneTable(t, k.kubectl("get", "cads", "nightly")).row(t, "nightly")
	if row["SCHEDULE"] != "* * * * *" || row["SUSPENDED"] != "" ||
		!strings.HasPrefix(row["NEXT SYNC"], "20") || row["LAST STATUS"] == "" {
		t.Errorf("kubectl get cads: %v", row)
	}

	// Suspended, the schedule stops: no next sync, and no new Job.
	k.kubectl("patch", "cads/nightly", "--type=merge", "-p", `{"spec":{"schedule":{"suspend":true}}}`)
	k.wait("cads/nightly", `{.status.conditions[?(@.type=="Scheduled")].reason}`, costv1.ReasonSuspended, 30*time.Second)
	row = oneTable(t, k.kubectl("get", "cads", "nightly")).row(t, "nightly")
	if row["SUSPENDED"] != "true" || row["NEXT SYNC"] != "" {
		t.Errorf("kubectl get cads after suspend: %v", row)
	}
}

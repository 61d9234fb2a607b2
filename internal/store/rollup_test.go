package store

import (
	"reflect"
	"testing"
	"time"
)

func TestTheRollupEqualsAGroupByOverCommittedRecordsAfterEachStep(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"a first run commits three months", func(t *testing.T) {
			run := runRef("ns", "ds", "r1")
			write(t, s, taskRef(run, "jan"), genRecords("r1", "2024-01", 300))
			write(t, s, taskRef(run, "feb"), genRecords("r1", "2024-02", 300))
			write(t, s, taskRef(run, "mar"), genRecords("r1", "2024-03", 300))
			commit(t, s, run, Window{Start: "2024-01"})
		}},
		{"another data source commits the same months", func(t *testing.T) {
			run := runRef("ns", "other", "o1")
			write(t, s, taskRef(run, "all"), append(genRecords("o1", "2024-01", 100), genRecords("o1", "2024-02", 100)...))
			commit(t, s, run, Window{Start: "2024-01"})
		}},
		{"a second run replaces February", func(t *testing.T) {
			run := runRef("ns", "ds", "r2")
			write(t, s, taskRef(run, "feb"), genRecords("r2", "2024-02", 120))
			commit(t, s, run, Window{Start: "2024-02", End: "2024-02"})
		}},
		{"a third run replaces one account of every month from January", func(t *testing.T) {
			run := runRef("ns", "ds", "r3")
			recs := genRecords("r3", "2024-01", 60)
			for i := range recs {
				recs[i].AccountID = "222"
			}
			write(t, s, taskRef(run, "acct"), recs)
			commit(t, s, run, Window{Start: "2024-01", Filter: map[string]any{"account_id": "222"}})
		}},
		{"a run that is rolled back changes nothing", func(t *testing.T) {
			run := runRef("ns", "ds", "r4")
			write(t, s, taskRef(run, "mar"), genRecords("r4", "2024-03", 50))
			if err := s.Rollback(ctx, run); err != nil {
				t.Fatal(err)
			}
		}},
		{"a run still open changes nothing", func(t *testing.T) {
			run := runRef("ns", "ds", "r5")
			write(t, s, taskRef(run, "mar"), genRecords("r5", "2024-03", 50))
		}},
		{"a run replacing a tag in March, with a retried task, commits", func(t *testing.T) {
			run := runRef("ns", "ds", "r6")
			ref := taskRef(run, "mar")
			write(t, s, ref, genRecords("r6a", "2024-03", 70))
			ref.Attempt = "pod-2"
			write(t, s, ref, genRecords("r6", "2024-03", 40))
			commit(t, s, run, Window{Start: "2024-03", End: "2024-03", Filter: map[string]any{"tags.team": "a"}})
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			checkRollup(t, s)
		})
	}
	if n := count(t, s, `SELECT count(*) FROM cost_monthly`); n < 20 {
		t.Fatalf("only %d rollup rows: the steps should give many groups", n)
	}
}

func TestTheFocusViewNamesColumnsAsFOCUSAndEndsChargePeriodsExclusively(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	run := runRef("ns", "ds", "job")
	r := rec("i-123", "2024-02-29", 2.5)
	r.Data = obj(map[string]any{"currency": "KRW"})
	write(t, s, taskRef(run, "t1"), []Record{r, rec("i-124", "2024-03-01", 1)})
	open := runRef("ns", "ds", "open")
	write(t, s, taskRef(open, "t1"), []Record{rec("i-999", "2024-02-29", 100)})

	if n := count(t, s, `SELECT count(*) FROM focus_cost`); n != 0 {
		t.Fatalf("focus_cost shows %d rows before any commit", n)
	}
	commit(t, s, run)

	rows, err := s.pool.Query(ctx, `SELECT * FROM focus_cost`)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for _, f := range rows.FieldDescriptions() {
		cols = append(cols, f.Name)
	}
	rows.Close()
	want := []string{
		"BilledCost", "EffectiveCost", "BillingCurrency", "ChargeCategory", "ChargePeriodStart", "ChargePeriodEnd",
		"BillingPeriodStart", "BillingPeriodEnd", "BillingAccountId", "ProviderName", "PublisherName", "InvoiceIssuerName",
		"ServiceName", "RegionId", "ResourceId", "Tags", "ConsumedQuantity", "ConsumedUnit",
		"x_UsageType", "x_RegionKey", "x_BilledMonth", "x_BilledYear", "x_AdditionalInfo", "x_Data",
		"x_Domain", "x_DataSource", "x_DataSourceUid", "x_Job", "x_JobUid", "x_JobTask", "x_JobTaskUid",
	}
	if !reflect.DeepEqual(cols, want) {
		t.Fatalf("focus_cost columns\n %v\nwant\n %v", cols, want)
	}

	var (
		billed, effective, consumed              float64
		currency, service, provider, region, res string
		account, unit, usageType, regionKey      string
		start, end, periodStart, periodEnd       time.Time
		tags                                     map[string]any
	)
	if err := s.pool.QueryRow(ctx, `SELECT "BilledCost", "EffectiveCost", "ConsumedQuantity", "BillingCurrency", "ServiceName",
		"ProviderName", "RegionId", "ResourceId", "BillingAccountId", "ConsumedUnit", "x_UsageType", "x_RegionKey",
		"ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd", "Tags" FROM focus_cost WHERE "ResourceId" = 'i-123'`).Scan(
		&billed, &effective, &consumed, &currency, &service, &provider, &region, &res, &account, &unit, &usageType, &regionKey,
		&start, &end, &periodStart, &periodEnd, &tags); err != nil {
		t.Fatal(err)
	}
	utc := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	checks := []struct {
		name      string
		got, want any
	}{
		{"BilledCost", billed, 2.5}, {"EffectiveCost", effective, 2.5}, {"ConsumedQuantity", consumed, 5.0},
		{"BillingCurrency", currency, "KRW"}, {"ServiceName", service, "AmazonEC2"}, {"ProviderName", provider, "aws"},
		{"RegionId", region, "us-east-1"}, {"ResourceId", res, "i-123"}, {"BillingAccountId", account, "111"},
		{"ConsumedUnit", unit, "Hrs"}, {"x_UsageType", usageType, "BoxUsage"}, {"x_RegionKey", regionKey, "aws.us-east-1"},
		{"ChargePeriodStart", start.UTC(), utc("2024-02-29T00:00:00Z")},
		{"ChargePeriodEnd (exclusive: the next day)", end.UTC(), utc("2024-03-01T00:00:00Z")},
		{"BillingPeriodStart", periodStart.UTC(), utc("2024-02-01T00:00:00Z")},
		{"BillingPeriodEnd", periodEnd.UTC(), utc("2024-03-01T00:00:00Z")},
		{"Tags", tags, map[string]any{"team": "a"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	var def string
	if err := s.pool.QueryRow(ctx, `SELECT "BillingCurrency" FROM focus_cost WHERE "ResourceId" = 'i-124'`).Scan(&def); err != nil || def != "USD" {
		t.Fatalf("BillingCurrency of a record without a currency: %q, %v; want USD", def, err)
	}
}

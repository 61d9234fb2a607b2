-- The monthly rollup (SpaceONE's MonthlyCost) and the FOCUS 1.2 view.

-- +goose Up

-- cost_jsonb_sum sums the numeric keys of jsonb objects: the rollup of data.*.
-- +goose StatementBegin
CREATE FUNCTION cost_jsonb_sum_step(acc jsonb, x jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(jsonb_object_agg(k, s), '{}'::jsonb)
    FROM (SELECT k, sum(v) AS s
          FROM (SELECT e.key AS k, e.value::float8 AS v FROM jsonb_each(acc) e
                UNION ALL
                SELECT e.key, e.value::float8
                FROM jsonb_each(CASE WHEN jsonb_typeof(x) = 'object' THEN x ELSE '{}'::jsonb END) e
                WHERE jsonb_typeof(e.value) = 'number') u
          GROUP BY k) t
$$;
-- +goose StatementEnd
CREATE AGGREGATE cost_jsonb_sum(jsonb) (
    SFUNC = cost_jsonb_sum_step,
    STYPE = jsonb,
    INITCOND = '{}'
);

-- Partial sums of each task's rows per month and dimensions, written with the
-- rows by the task's transaction. A commit rebuilds the touched months of
-- cost_monthly from these (a few rows per task) rather than from the records.
CREATE TABLE task_rollup (
    job_uid        text NOT NULL,
    job_task_uid   text NOT NULL,
    domain         text NOT NULL,
    data_source    text NOT NULL,
    billed_month   text NOT NULL,
    account_id     text,
    provider       text,
    region_code    text,
    product        text,
    usage_type     text,
    usage_unit     text,
    cost           double precision NOT NULL,
    usage_quantity double precision NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    rows           bigint NOT NULL
);
CREATE INDEX task_rollup_task_idx ON task_rollup (job_uid, job_task_uid);
CREATE INDEX task_rollup_source_idx ON task_rollup (domain, data_source, billed_month);

-- SpaceONE's MonthlyCost: committed records summed by month and dimensions.
CREATE TABLE cost_monthly (
    domain         text NOT NULL,
    data_source    text NOT NULL,
    billed_month   text NOT NULL,
    billed_year    text NOT NULL,
    account_id     text,
    provider       text,
    region_code    text,
    region_key     text,
    product        text,
    usage_type     text,
    usage_unit     text,
    cost           double precision NOT NULL,
    usage_quantity double precision NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    rows           bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cost_monthly_source_idx ON cost_monthly (domain, data_source, billed_month);
CREATE INDEX cost_monthly_month_idx ON cost_monthly (domain, billed_month, account_id);

-- Backfill from the records loaded under version 1.
INSERT INTO task_rollup (job_uid, job_task_uid, domain, data_source, billed_month, account_id,
                         provider, region_code, product, usage_type, usage_unit,
                         cost, usage_quantity, data, rows)
SELECT job_uid, job_task_uid, domain, data_source, billed_month, account_id,
       provider, region_code, product, usage_type, usage_unit,
       sum(cost), coalesce(sum(usage_quantity), 0), cost_jsonb_sum(data), count(*)
FROM cost_record
GROUP BY job_uid, job_task_uid, domain, data_source, billed_month, account_id,
         provider, region_code, product, usage_type, usage_unit;

INSERT INTO cost_monthly (domain, data_source, billed_month, billed_year, account_id, provider,
                          region_code, region_key, product, usage_type, usage_unit,
                          cost, usage_quantity, data, rows)
SELECT t.domain, t.data_source, t.billed_month, left(t.billed_month, 4), t.account_id, t.provider,
       t.region_code, t.provider || '.' || t.region_code, t.product, t.usage_type, t.usage_unit,
       sum(t.cost), sum(t.usage_quantity), cost_jsonb_sum(t.data), sum(t.rows)
FROM task_rollup t
JOIN run r ON r.job_uid = t.job_uid AND r.state = 'committed'
GROUP BY t.domain, t.data_source, t.billed_month, t.account_id, t.provider,
         t.region_code, t.product, t.usage_type, t.usage_unit;

-- The committed records in FOCUS 1.2 column names; x_ columns carry the rest.
CREATE VIEW focus_cost AS
SELECT
    c.cost                                                      AS "BilledCost",
    c.cost                                                      AS "EffectiveCost",
    coalesce(c.data ->> 'currency', c.additional_info ->> 'currency', 'USD') AS "BillingCurrency",
    'Usage'::text                                               AS "ChargeCategory",
    (c.billed_date::timestamp AT TIME ZONE 'UTC')               AS "ChargePeriodStart",
    ((c.billed_date + 1)::timestamp AT TIME ZONE 'UTC')         AS "ChargePeriodEnd",
    (date_trunc('month', c.billed_date)::timestamp AT TIME ZONE 'UTC') AS "BillingPeriodStart",
    ((date_trunc('month', c.billed_date) + interval '1 month')::timestamp AT TIME ZONE 'UTC') AS "BillingPeriodEnd",
    c.account_id                                                AS "BillingAccountId",
    c.provider                                                  AS "ProviderName",
    c.provider                                                  AS "PublisherName",
    c.provider                                                  AS "InvoiceIssuerName",
    c.product                                                   AS "ServiceName",
    c.region_code                                               AS "RegionId",
    c.resource                                                  AS "ResourceId",
    coalesce(c.tags, '{}'::jsonb)                               AS "Tags",
    c.usage_quantity                                            AS "ConsumedQuantity",
    c.usage_unit                                                AS "ConsumedUnit",
    c.usage_type                                                AS "x_UsageType",
    c.region_key                                                AS "x_RegionKey",
    c.billed_month                                              AS "x_BilledMonth",
    c.billed_year                                               AS "x_BilledYear",
    c.additional_info                                           AS "x_AdditionalInfo",
    c.data                                                      AS "x_Data",
    c.domain                                                    AS "x_Domain",
    c.data_source                                               AS "x_DataSource",
    c.data_source_uid                                           AS "x_DataSourceUid",
    c.job                                                       AS "x_Job",
    c.job_uid                                                   AS "x_JobUid",
    c.job_task                                                  AS "x_JobTask",
    c.job_task_uid                                              AS "x_JobTaskUid"
FROM cost c;

-- +goose Down
DROP VIEW IF EXISTS focus_cost;
DROP TABLE IF EXISTS cost_monthly;
DROP TABLE IF EXISTS task_rollup;
DROP AGGREGATE IF EXISTS cost_jsonb_sum(jsonb);
DROP FUNCTION IF EXISTS cost_jsonb_sum_step(jsonb, jsonb);

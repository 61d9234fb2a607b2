-- The base schema: runs, task loads, the partitioned cost records and the view
-- of committed records. Applied by store.Migrate (goose, one transaction).

-- +goose Up

-- One row per run (a Job, by UID: a Job recreated with the same name is
-- another run). Rows of a run are visible to readers only once it is committed.
CREATE TABLE run (
    job_uid        text PRIMARY KEY,
    domain         text NOT NULL,
    data_source    text NOT NULL,
    job            text NOT NULL,
    state          text NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'committed', 'rolled_back')),
    windows        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    committed_at   timestamptz,
    rolled_back_at timestamptz
);
CREATE INDEX run_source_idx ON run (domain, data_source, state);

-- One row per JobTask (by UID): what its last successful attempt loaded.
CREATE TABLE task_load (
    job_task_uid text PRIMARY KEY,
    job_uid      text NOT NULL,
    job_task     text NOT NULL,
    attempt      text NOT NULL DEFAULT '',
    rows         bigint NOT NULL DEFAULT 0,
    bytes        bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    loaded_at    timestamptz
);
CREATE INDEX task_load_job_idx ON task_load (job_uid);

-- Every field of SpaceONE's Cost, plus the run that loaded it. Partitioned by
-- billed month (cost_record_yYYYYmMM), partitions made on demand by
-- cost_record_ensure_partition. Empty text fields are stored as NULL.
CREATE TABLE cost_record (
    cost            double precision NOT NULL,
    usage_quantity  double precision,
    usage_unit      text,
    provider        text,
    region_code     text,
    region_key      text GENERATED ALWAYS AS (provider || '.' || region_code) STORED,
    product         text,
    usage_type      text,
    resource        text,
    tags            jsonb,
    additional_info jsonb,
    data            jsonb,
    billed_date     date NOT NULL,
    billed_month    text GENERATED ALWAYS AS (
                        lpad(extract(year FROM billed_date)::int::text, 4, '0') || '-' ||
                        lpad(extract(month FROM billed_date)::int::text, 2, '0')) STORED,
    billed_year     text GENERATED ALWAYS AS (
                        lpad(extract(year FROM billed_date)::int::text, 4, '0')) STORED,
    account_id      text,
    domain          text NOT NULL,
    data_source     text NOT NULL,
    data_source_uid text,
    job             text NOT NULL,
    job_uid         text NOT NULL,
    job_task        text NOT NULL,
    job_task_uid    text NOT NULL
) PARTITION BY RANGE (billed_date);

CREATE INDEX cost_record_run_idx ON cost_record (job_uid, job_task_uid);
CREATE INDEX cost_record_source_idx ON cost_record (domain, data_source, billed_date);
CREATE INDEX cost_record_month_account_idx ON cost_record (domain, billed_month, account_id);
CREATE INDEX cost_record_month_product_idx ON cost_record (domain, billed_month, product);

-- cost_record_ensure_partition makes the partition of d's month when it is
-- missing and returns its name. Call it in a short transaction of its own: it
-- creates a plain table and ATTACHes it, which takes only a SHARE UPDATE
-- EXCLUSIVE lock on cost_record (CREATE TABLE ... PARTITION OF would take an
-- ACCESS EXCLUSIVE one and wait for, and block, every writer and reader).
-- Concurrent callers are serialized by an advisory lock and re-check.
-- +goose StatementBegin
CREATE FUNCTION cost_record_ensure_partition(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    m    date := date_trunc('month', d)::date;
    part text := 'cost_record_y' || lpad(extract(year FROM d)::int::text, 4, '0')
                 || 'm' || lpad(extract(month FROM d)::int::text, 2, '0');
BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'cost_record'::regclass AND c.relname = part) THEN
        RETURN part;
    END IF;
    PERFORM pg_advisory_xact_lock(7310293184117711361);
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = 'cost_record'::regclass AND c.relname = part) THEN
        RETURN part;
    END IF;
    IF to_regclass(quote_ident(part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE cost_record INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)', part);
    END IF;
    EXECUTE format('ALTER TABLE cost_record ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part, m, (m + interval '1 month')::date);
    RETURN part;
END
$$;
-- +goose StatementEnd

-- Readers read this: the records of committed runs only.
CREATE VIEW cost AS
SELECT c.*
FROM cost_record c
WHERE EXISTS (SELECT 1 FROM run r WHERE r.job_uid = c.job_uid AND r.state = 'committed');

-- +goose Down
DROP VIEW IF EXISTS cost;
DROP FUNCTION IF EXISTS cost_record_ensure_partition(date);
DROP TABLE IF EXISTS cost_record;
DROP TABLE IF EXISTS task_load;
DROP TABLE IF EXISTS run;

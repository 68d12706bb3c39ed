-- driftwatch schema, migration 0001: raw events, labels, rejections.
-- `{db}` is replaced by the configured database (a validated identifier).

-- Every valid scored transaction. ReplacingMergeTree on the sorting key
-- (mcc, event_time, event_id) plus FINAL in every monitor query means a re-delivered
-- event (same event_id) is never counted twice. Partitioned by day of event time;
-- ordered by mcc first so per-segment scans read contiguous ranges.
CREATE TABLE IF NOT EXISTS {db}.scored_transactions
(
    event_id               String,
    txn_id                 String,
    event_time             DateTime64(3, 'UTC'),
    amount_minor           UInt64,
    amount_cents           UInt8,
    currency               LowCardinality(String),
    mcc                    LowCardinality(String),
    merchant_id            String,
    merchant_country       LowCardinality(String),
    merchant_registered_at Nullable(Date),
    card_id                String,
    customer_id            String,
    beneficiary_name       String,
    channel                LowCardinality(String),
    ip                     String,
    device_id              String,
    geo_lat                Nullable(Float64),
    geo_lon                Nullable(Float64),
    features_num           Map(String, Float64),
    features_str           Map(String, String),
    model_name             LowCardinality(String),
    model_version          LowCardinality(String),
    score                  Float64,
    threshold              Float64,
    decision               LowCardinality(String),
    shadow_versions        Array(LowCardinality(String)),
    shadow_scores          Array(Float64),
    ingest_time            DateTime64(3, 'UTC'),
    source                 LowCardinality(String)
)
ENGINE = ReplacingMergeTree(ingest_time)
PARTITION BY toYYYYMMDD(event_time)
ORDER BY (mcc, event_time, event_id);

-- Ground-truth labels: the latest label_time per txn_id wins (query with FINAL).
CREATE TABLE IF NOT EXISTS {db}.labels
(
    txn_id      String,
    label       UInt8,
    label_time  DateTime64(3, 'UTC'),
    source      LowCardinality(String),
    ingest_time DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(label_time)
ORDER BY txn_id;

-- Every rejected payload with its machine-readable reason and the raw bytes.
-- Re-delivery of the same payload collapses on (kind, source, raw).
CREATE TABLE IF NOT EXISTS {db}.rejected_events
(
    received_at DateTime64(3, 'UTC'),
    kind        LowCardinality(String),
    reason      LowCardinality(String),
    detail      String,
    event_id    String,
    raw         String,
    source      String
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(received_at)
ORDER BY (kind, source, raw);

-- driftwatch schema, migration 0010: every version of every label (issue 22).
-- `{db}` is replaced by the configured database (a validated identifier).

-- `labels` keeps the newest label per transaction (ReplacingMergeTree): once its parts
-- merge, the earlier versions are gone, and a replay of a pass at time t could no longer
-- see the label that was known at t. Every label is also written here, beside it, and
-- never replaced: recall reads the label known at a given age from this table (together
-- with `labels`, so that labels stored before this migration still count). An identical
-- re-delivery (same transaction, label, time and source) collapses to one row; any other
-- version is kept.
CREATE TABLE IF NOT EXISTS {db}.label_history
(
    txn_id      String,
    label       UInt8,
    label_time  DateTime64(3, 'UTC'),
    source      LowCardinality(String),
    ingest_time DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(ingest_time)
ORDER BY (txn_id, label_time, label, source);


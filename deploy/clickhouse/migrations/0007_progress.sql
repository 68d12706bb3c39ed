-- driftwatch schema, migration 0007: event-time progress per partition (issue 23).
-- `{db}` is replaced by the configured database (a validated identifier).

-- Every worker writes, every tick, one row per partition it owns: the newest event time
-- it has stored from that partition (capped at the time guard's plausible clock) and the
-- partition's lag. The leader's monitor takes the group-wide low watermark from it: the
-- minimum progress over partitions that still hold a backlog, ignoring rows not renewed
-- for `progress_idle_s` (an owner that left; its successor writes the partition anew).
--   event_time  newest stored event time; NULL while the owner stored nothing from it
--   lag         records behind the fetch high-water mark when the row was written
--   worker      the Kafka client id of the owner (diagnostics)
CREATE TABLE IF NOT EXISTS {db}.partition_progress
(
    consumer_group LowCardinality(String),
    topic          LowCardinality(String),
    partition      UInt32,
    event_time     Nullable(DateTime64(3, 'UTC')),
    lag            UInt64,
    worker         String,
    updated_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (consumer_group, topic, partition);

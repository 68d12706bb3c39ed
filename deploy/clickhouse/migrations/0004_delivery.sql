-- driftwatch schema, migration 0004: alert delivery (the outbox).
-- `{db}` is replaced by the configured database (a validated identifier).

-- One row per alert state (fingerprint, version) that a sink delivered. The alert book
-- writes `alerts`/`alert_log` BEFORE any sink runs; a state is pending for a sink while
-- this table has no row for (sink, fingerprint, version), so an Alertmanager or webhook
-- outage loses nothing: the sink re-reads its pending states from ClickHouse and delivers
-- them when the receiver is back. Re-posting a state again (Alertmanager re-posts firing
-- alerts every `alert_resend_s`) collapses on the sorting key.
--   sink         'alertmanager' or 'webhook' (the sink's name)
--   attempts     posts it took (1 = delivered at the first try)
--   last_error   the error of the last failed attempt before success ('' if none)
CREATE TABLE IF NOT EXISTS {db}.alert_deliveries
(
    sink         LowCardinality(String),
    fingerprint  String,
    version      UInt64,
    status       LowCardinality(String),
    delivered_at DateTime64(3, 'UTC'),
    attempts     UInt32,
    last_error   String
)
ENGINE = ReplacingMergeTree(delivered_at)
ORDER BY (sink, fingerprint, version);

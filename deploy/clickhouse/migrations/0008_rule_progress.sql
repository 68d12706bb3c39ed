-- driftwatch schema, migration 0008: how far the store-side rules were evaluated (issue 23).
-- `{db}` is replaced by the configured database (a validated identifier).

-- Rules whose windows are keyed by something other than the card (IP, merchant,
-- coordinates, ...) see only 1/N of the traffic in each of N workers, so the leader
-- evaluates them in ClickHouse over the stored events (driftwatch.rules.storeside).
-- One row per rule: the event time up to which (exclusive) its hits are stored in
-- `rule_hits`. It only moves forward (the version column): a new leader resumes there
-- and an old leader that still writes cannot move it back. Hits themselves collapse on
-- (rule_id, event_id) in `rule_hits`, so a span evaluated twice stores each hit once.
CREATE TABLE IF NOT EXISTS {db}.rule_progress
(
    rule_id         LowCardinality(String),
    evaluated_until DateTime64(3, 'UTC'),
    updated_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(evaluated_until)
ORDER BY rule_id;

-- driftwatch schema, migration 0002: monitor results and the alert lifecycle.
-- `{db}` is replaced by the configured database (a validated identifier).

-- Every evaluation of every monitor pass that had enough data to test: one row per
-- (pass, detector, test, segment, model version). A pass is identified by its event
-- time `evaluated_at` (the end of its current window); running the same pass again
-- (a restarted worker, a second replay) replaces its rows instead of doubling them.
--   test        the statistic computed, e.g. 'psi', 'ks', 'max_cell', 'flip_rate'
--   reference   how the reference was chosen, e.g. 'trailing 7d [2026-03-11T00:00Z, ...)'
--   statistic   the test statistic; pvalue its p-value (NaN when not tested)
--   pvalue_adj  the Benjamini-Hochberg adjusted p-value over the whole pass
--   effect      the detector's effect size (compared with its effect-size floor)
--   decision    'ok', 'discovery' (BH only), 'sustain' (keeps a firing alert),
--               'alert' (BH and effect floor)
--   severity    '' or the severity of the finding raised ('info', 'warning', 'critical')
--   details     JSON object with the detector's own numbers
CREATE TABLE IF NOT EXISTS {db}.drift_results
(
    evaluated_at  DateTime64(3, 'UTC'),
    detector      LowCardinality(String),
    test          LowCardinality(String),
    segment       String,
    model_version LowCardinality(String),
    window_start  DateTime64(3, 'UTC'),
    window_end    DateTime64(3, 'UTC'),
    reference     String,
    statistic     Float64,
    pvalue        Float64,
    pvalue_adj    Float64,
    effect        Float64,
    n             UInt64,
    n_ref         UInt64,
    decision      LowCardinality(String),
    severity      LowCardinality(String),
    fingerprint   String,
    details       String,
    written_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(written_at)
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (detector, test, segment, model_version, evaluated_at);

-- The current state of every alert (one row per fingerprint after FINAL): the newest
-- `version` wins. Times are event time (in a replay they follow the data).
--   origin        the detector name or the rule id
--   last_seen_at  event time of the newest finding that fed the alert
--   findings      number of findings merged into the alert since it started
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    fingerprint   String,
    status        LowCardinality(String),
    starts_at     DateTime64(3, 'UTC'),
    ends_at       Nullable(DateTime64(3, 'UTC')),
    updated_at    DateTime64(3, 'UTC'),
    alertname     LowCardinality(String),
    severity      LowCardinality(String),
    source        LowCardinality(String),
    segment       String,
    origin        LowCardinality(String),
    model_version LowCardinality(String),
    labels        Map(String, String),
    annotations   Map(String, String),
    version       UInt64,
    written_at    DateTime64(3, 'UTC'),
    last_seen_at  DateTime64(3, 'UTC'),
    findings      UInt32
)
ENGINE = ReplacingMergeTree(version)
ORDER BY fingerprint;

-- Append-only history of every alert state change (firing, severity raised, resolved),
-- with the same columns as `alerts`.
CREATE TABLE IF NOT EXISTS {db}.alert_log
(
    fingerprint   String,
    status        LowCardinality(String),
    starts_at     DateTime64(3, 'UTC'),
    ends_at       Nullable(DateTime64(3, 'UTC')),
    updated_at    DateTime64(3, 'UTC'),
    alertname     LowCardinality(String),
    severity      LowCardinality(String),
    source        LowCardinality(String),
    segment       String,
    origin        LowCardinality(String),
    model_version LowCardinality(String),
    labels        Map(String, String),
    annotations   Map(String, String),
    version       UInt64,
    written_at    DateTime64(3, 'UTC'),
    last_seen_at  DateTime64(3, 'UTC'),
    findings      UInt32
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(updated_at)
ORDER BY (fingerprint, version);

-- driftwatch schema, migration 0003: the rule layer.
-- `{db}` is replaced by the configured database (a validated identifier).

-- One row per (rule, event) hit of the live rule layer. ReplacingMergeTree on
-- (rule_id, event_id): a re-delivered batch re-inserts the same hits and they collapse
-- (query with FINAL). The model's score and decision are recorded NEXT TO the hit
-- (never used to decide it): that pair is the model-vs-rules disagreement signal.
--   rule_version  the rule's `version`; pack / pack_sha256 the file it came from and the
--                 SHA-256 of that file's bytes at load time (a changed file is visible)
--   severity      low | medium | high | critical;  mode  enforce | shadow
--   high_risk     1 when an ENFORCED rule of severity high or critical hit
--   evidence      JSON object: the value of each windowed aggregate of the rule,
--                 e.g. {"count_distinct(card_id, by=ip, within=1h)": 7}
--   hit_time      wall-clock time the hit was recorded
CREATE TABLE IF NOT EXISTS {db}.rule_hits
(
    event_id         String,
    txn_id           String,
    event_time       DateTime64(3, 'UTC'),
    rule_id          LowCardinality(String),
    rule_version     UInt32,
    severity         LowCardinality(String),
    mode             LowCardinality(String),
    reason_code      LowCardinality(String),
    high_risk        UInt8,
    pack             LowCardinality(String),
    pack_sha256      LowCardinality(String),
    mcc              LowCardinality(String),
    merchant_country LowCardinality(String),
    channel          LowCardinality(String),
    merchant_id      String,
    card_id          String,
    model_version    LowCardinality(String),
    score            Float64,
    decision         LowCardinality(String),
    amount_minor     UInt64,
    evidence         String,
    hit_time         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(hit_time)
PARTITION BY toYYYYMM(event_time)
ORDER BY (rule_id, event_id);

-- The per-transaction disagreement record: one row per transaction that any rule hit,
-- with whether an enforced high/critical rule hit (`high_risk`) and the model's
-- decision. Transactions no rule hit are not here (their high_risk is 0); take
-- denominators from scored_transactions. Per segment, e.g.:
--   SELECT mcc, countIf(high_risk = 1 AND decision = 'approve') AS rule_high_model_approved
--   FROM {db}.rule_verdicts WHERE event_time >= ... GROUP BY mcc
CREATE VIEW IF NOT EXISTS {db}.rule_verdicts AS
SELECT
    event_id,
    any(txn_id)                           AS txn_id,
    min(event_time)                       AS event_time,
    any(mcc)                              AS mcc,
    any(merchant_country)                 AS merchant_country,
    any(channel)                          AS channel,
    any(model_version)                    AS model_version,
    any(score)                            AS score,
    any(decision)                         AS decision,
    any(amount_minor)                     AS amount_minor,
    groupArrayIf(rule_id, mode = 'enforce' AND severity IN ('high', 'critical'))
                                          AS high_risk_rules,
    groupArray(rule_id)                   AS rules,
    max(high_risk)                        AS high_risk
FROM {db}.rule_hits FINAL
GROUP BY event_id;

-- driftwatch schema, migration 0005: analyst views.
-- `{db}` is replaced by the configured database (a validated identifier).
-- Plain views (computed at query time, nothing stored). Filter them in WHERE on their
-- time and key columns; ClickHouse pushes those predicates into the scans. Examples
-- are in deploy/README.md ("Analyst views").

-- Hourly breakdown per segment (mcc x merchant_country x channel) and model version:
-- volume, amount, scores, decision rates, labels, fraud rate, recall and precision.
-- Re-delivered events and relabelled transactions count once (FINAL). "flagged" is the
-- model's positive call: score >= the transaction's threshold. Recall and precision
-- only count labelled transactions and are NULL when there is nothing to divide.
-- Roll up with sums of the count columns (n, approved, ..., tp, fp), not of the rates.
CREATE VIEW IF NOT EXISTS {db}.segment_hourly AS
SELECT
    toStartOfHour(s.event_time)                                  AS hour,
    s.mcc                                                        AS mcc,
    s.merchant_country                                           AS merchant_country,
    s.channel                                                    AS channel,
    s.model_version                                              AS model_version,
    count()                                                      AS n,
    sum(s.amount_minor)                                          AS amount_minor,
    avg(s.score)                                                 AS score_mean,
    quantile(0.5)(s.score)                                       AS score_p50,
    quantile(0.9)(s.score)                                       AS score_p90,
    quantile(0.99)(s.score)                                      AS score_p99,
    countIf(s.decision = 'approve')                              AS approved,
    countIf(s.decision = 'review')                               AS reviewed,
    countIf(s.decision = 'decline')                              AS declined,
    approved / n                                                 AS approve_rate,
    reviewed / n                                                 AS review_rate,
    declined / n                                                 AS decline_rate,
    countIf(l.txn_id != '')                                      AS labelled,
    countIf(l.txn_id != '' AND l.label = 1)                      AS fraud,
    countIf(l.txn_id != '' AND l.label = 0)                      AS legit,
    fraud / nullIf(labelled, 0)                                  AS fraud_rate,
    countIf(l.label = 1 AND s.score >= s.threshold)              AS tp,
    countIf(l.txn_id != '' AND l.label = 0 AND s.score >= s.threshold) AS fp,
    fraud - tp                                                   AS fn,
    tp / nullIf(fraud, 0)                                        AS recall,
    tp / nullIf(tp + fp, 0)                                      AS precision
FROM {db}.scored_transactions AS s FINAL
LEFT JOIN (SELECT txn_id, label FROM {db}.labels FINAL) AS l ON l.txn_id = s.txn_id
GROUP BY hour, mcc, merchant_country, channel, model_version;

-- Every monitor test result, deduplicated (a re-run pass replaces its rows), with the
-- day and a flag for the rows that raised or kept an alert.
CREATE VIEW IF NOT EXISTS {db}.drift_history AS
SELECT
    toDate(evaluated_at)                     AS day,
    evaluated_at,
    detector,
    test,
    segment,
    model_version,
    window_start,
    window_end,
    reference,
    statistic,
    pvalue,
    pvalue_adj,
    effect,
    n,
    n_ref,
    decision,
    decision IN ('alert', 'sustain')         AS alerted,
    severity,
    fingerprint,
    details
FROM {db}.drift_results FINAL;

-- Per day, detector and test: how many segment-tests ran, how many were BH discoveries
-- and how many raised alerts, and the strongest evidence of the day.
CREATE VIEW IF NOT EXISTS {db}.drift_daily AS
SELECT
    toDate(evaluated_at)                            AS day,
    detector,
    test,
    count()                                         AS tests,
    uniqExact(segment, model_version)               AS segments,
    countIf(decision != 'ok')                       AS discoveries,
    countIf(decision = 'alert')                     AS alerts,
    min(pvalue_adj)                                 AS min_pvalue_adj,
    max(effect)                                     AS max_effect
FROM {db}.drift_results FINAL
GROUP BY day, detector, test;

-- Rule hits per rule (and version, mode) per day, with what the model did with the same
-- transactions (approved = the model-vs-rules disagreement) and, where labels exist,
-- how many hits were fraud (the rule's precision).
CREATE VIEW IF NOT EXISTS {db}.rule_hits_daily AS
SELECT
    toDate(h.event_time)                               AS day,
    h.rule_id                                          AS rule_id,
    h.rule_version                                     AS rule_version,
    h.mode                                             AS mode,
    any(h.severity)                                    AS severity,
    count()                                            AS hits,
    uniqExact(h.card_id)                               AS cards,
    uniqExact(h.merchant_id)                           AS merchants,
    sum(h.amount_minor)                                AS amount_minor,
    countIf(h.decision = 'approve')                    AS model_approved,
    model_approved / hits                              AS model_approved_rate,
    avg(h.score)                                       AS score_mean,
    countIf(l.txn_id != '')                            AS labelled,
    countIf(l.txn_id != '' AND l.label = 1)            AS fraud,
    fraud / nullIf(labelled, 0)                        AS precision
FROM {db}.rule_hits AS h FINAL
LEFT JOIN (SELECT txn_id, label FROM {db}.labels FINAL) AS l ON l.txn_id = h.txn_id
GROUP BY day, rule_id, rule_version, mode;

-- One row per alert episode (fingerprint and start): its latest state, how often it
-- changed, how long it fired (event time) and where it was delivered.
CREATE VIEW IF NOT EXISTS {db}.alert_history AS
SELECT
    e.*,
    dateDiff('second', e.starts_at, coalesce(e.ends_at, e.last_updated_at)) AS duration_s,
    d.sinks             AS delivered_to,
    if(empty(d.sinks), NULL, d.last_delivered_at) AS last_delivered_at,
    d.max_attempts      AS max_attempts
FROM
(
    SELECT
        l.fingerprint                                        AS fingerprint,
        l.starts_at                                          AS starts_at,
        argMax(l.alertname, l.version)                       AS alertname,
        argMax(l.severity, l.version)                        AS severity,
        argMax(l.source, l.version)                          AS source,
        argMax(l.origin, l.version)                          AS origin,
        argMax(l.segment, l.version)                         AS segment,
        argMax(l.model_version, l.version)                   AS model_version,
        argMax(l.status, l.version)                          AS status,
        argMax(l.ends_at, l.version)                         AS ends_at,
        max(l.updated_at)                                    AS last_updated_at,
        count()                                              AS state_changes,
        max(l.findings)                                      AS findings,
        argMax(l.annotations['summary'], l.version)          AS summary,
        argMax(l.annotations['value'], l.version)            AS value,
        argMax(l.annotations['threshold'], l.version)        AS threshold,
        min(l.written_at)                                    AS first_written_at
    FROM {db}.alert_log AS l
    GROUP BY l.fingerprint, l.starts_at
) AS e
LEFT JOIN
(
    SELECT
        x.fingerprint           AS fingerprint,
        groupUniqArray(x.sink)  AS sinks,
        max(x.delivered_at)     AS last_delivered_at,
        max(x.attempts)         AS max_attempts
    FROM {db}.alert_deliveries AS x FINAL
    GROUP BY x.fingerprint
) AS d ON d.fingerprint = e.fingerprint;

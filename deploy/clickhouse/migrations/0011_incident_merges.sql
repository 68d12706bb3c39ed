-- driftwatch schema, migration 0011: incidents merged after they were opened (issue 21).
-- `{db}` is replaced by the configured database (a validated identifier).

-- Two alert writers can open two incidents for one attack (their first alerts at the
-- same instant), and an alert can later link two open incidents. The `incident` label
-- of an alert already sent cannot change, so the merge is recorded here: `incident` is
-- shown as part of `merged_into` (driftwatch.alerts.incidents). Every writer derives
-- the same merge (the incident with the earliest first alert, then the smallest id,
-- absorbs the other), so concurrent writers insert the same row, which collapses.
CREATE TABLE IF NOT EXISTS {db}.incident_merges
(
    incident    String,
    merged_into String,
    merged_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(merged_at)
ORDER BY incident;

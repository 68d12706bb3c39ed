"""Every setting, declared once: type, default, environment variable and one-line doc.

Precedence, lowest to highest: the defaults below, a TOML file (``driftwatch.toml`` in
the working directory, or the file named by ``DRIFTWATCH_CONFIG``), environment
variables ``DRIFTWATCH_<NAME>``, then explicit overrides (command-line flags).

>>> s = Settings.load(env={"DRIFTWATCH_BATCH_SIZE": "250"}, config_file=None)
>>> s.batch_size
250
>>> Settings.load(env={"DRIFTWATCH_BATCH_SIZE": "many"}, config_file=None)
Traceback (most recent call last):
...
driftwatch.errors.ConfigError: DRIFTWATCH_BATCH_SIZE: expected an integer, got 'many'
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftwatch.errors import ConfigError

ENV_PREFIX = "DRIFTWATCH_"
CONFIG_ENV = "DRIFTWATCH_CONFIG"
DEFAULT_CONFIG_FILE = "driftwatch.toml"


def setting(default: Any, doc: str, *, secret: bool = False) -> Any:
    """Declare one setting: its default, a one-line doc, and whether it is a secret."""
    return field(default=default, metadata={"doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """The effective configuration of one driftwatch process."""

    # --- storage ---------------------------------------------------------------------
    store_dsn: str = setting(
        "chdb://./.driftwatch/chdb",
        "ClickHouse: chdb:///abs/path (embedded) or http(s)://user:pass@host:port/db",
    )
    database: str = setting("driftwatch", "ClickHouse database holding driftwatch tables")
    batch_size: int = setting(
        5000, "Events per processing batch (a worker: also the most rows per insert)"
    )
    replay_batch_size: int = setting(
        50_000, "Events per batch of `driftwatch replay` (bigger inserts, fewer merges)"
    )
    store_retry_max_s: float = setting(30.0, "Longest back-off between ClickHouse retries")
    # --- kafka ------------------------------------------------------------------------
    kafka_bootstrap: str = setting("localhost:9092", "Kafka bootstrap servers, comma separated")
    consumer_group: str = setting("driftwatch", "Kafka consumer group of the workers")
    topic_scored: str = setting("transactions.scored", "Topic of scored transactions")
    topic_labels: str = setting("transactions.labels", "Topic of delayed ground-truth labels")
    topic_deadletter: str = setting("transactions.deadletter", "Topic for rejected events")
    topic_rule_hits: str = setting("transactions.rule_hits", "Topic for rule hits (cases)")
    topic_partitions: int = setting(4, "Partitions for `driftwatch topics create`")
    topic_replication: int = setting(1, "Replication factor for `driftwatch topics create`")
    kafka_security_protocol: str = setting(
        "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    kafka_sasl_mechanism: str = setting("", "SASL mechanism, e.g. PLAIN or SCRAM-SHA-512")
    kafka_sasl_username: str = setting("", "SASL user name")
    kafka_sasl_password: str = setting("", "SASL password", secret=True)
    kafka_ssl_cafile: str = setting("", "CA bundle for TLS to Kafka")
    kafka_session_timeout_s: float = setting(10.0, "Kafka consumer-group session timeout")
    # --- worker -----------------------------------------------------------------------
    worker_web_host: str = setting("127.0.0.1", "Address of the worker's web server")
    worker_web_port: int = setting(6066, "Port of the worker's web server (metrics, API)")
    worker_app: str = setting(
        "streams.main:app", "faust app `driftwatch worker` runs (module:attr)"
    )
    worker_tick_s: float = setting(5.0, "Seconds between the worker's monitor/delivery ticks")
    worker_stop_timeout_s: float = setting(30.0, "Longest wait to flush a batch at shutdown")
    worker_flush_s: float = setting(
        0.25, "Longest a worker holds batches to write them as one insert (commits wait)"
    )
    worker_datadir: str = setting(".driftwatch/faust", "Directory for the faust app's local data")
    api_token: str = setting("", "Bearer token required by the HTTP API", secret=True)
    api_port: int = setting(6067, "Port of the standalone read-only API (`driftwatch api`)")
    log_level: str = setting("INFO", "Log level: DEBUG, INFO, WARNING or ERROR")
    log_format: str = setting(
        "auto", "Log format: json, text, or auto (text on a terminal, JSON otherwise)"
    )
    # --- monitors ---------------------------------------------------------------------
    monitor_interval_s: int = setting(300, "Seconds of event time between monitor passes")
    monitor_window_s: int = setting(3600, "Length of the current window, seconds")
    reference_window_s: int = setting(7 * 86400, "Length of the trailing reference window")
    watermark_delay_s: int = setting(60, "Allowed lateness of events before a window closes")
    segment_dimensions: str = setting(
        "mcc,merchant_country,channel,model_version,mcc*merchant_country",
        "Segment dimensions and crosses (a*b), comma separated",
    )
    fdr_q: float = setting(0.01, "Benjamini-Hochberg false-discovery rate per monitor pass")
    alert_q: float = setting(1e-4, "BH level a discovery must reach to raise a detector alert")
    decision_threshold: float = setting(
        0.7, "Gate only: score at or above which a model holds a txn (monitors use each event's)")
    champion_version: str = setting("", "Champion model version (empty: the oldest seen)")
    monitor_detectors: str = setting(
        "", "Detectors to run, comma separated (empty: all; none: no monitors, e.g. in replay)"
    )
    detector_options: str = setting("", "Detector options: name.option=value, comma separated")
    feature_ranges: str = setting("customer_age=0..125", "Valid feature ranges: name=lo..hi, ...")
    label_maturity_s: int = setting(86400, "Age after which a transaction's label counts as final")
    monitor_warmup_s: int = setting(86400, "No detector alerts before this much stored history")
    monitor_max_catchup: int = setting(
        12, "Monitor passes of stored history run at the first watermark (restart, catch-up)"
    )
    # --- rules ------------------------------------------------------------------------
    rules_dirs: str = setting("rules", "Directories of YAML rule packs, comma separated")
    rule_state_horizon_s: int = setting(86400, "Longest window a rule may ask for, seconds")
    # --- alerting ---------------------------------------------------------------------
    alertmanager_url: str = setting("", "Alertmanager base URL; empty disables delivery")
    alert_resend_s: int = setting(60, "Re-post firing alerts to Alertmanager this often")
    alert_resolve_after: int = setting(3, "Clean monitor passes before an alert resolves")
    rule_alert_quiet_s: int = setting(86400, "Seconds without a rule hit before its alert resolves")
    webhook_url: str = setting("", "Generic webhook URL for alerts; empty disables it")
    webhook_token: str = setting("", "Bearer token sent to the webhook", secret=True)
    alert_retry_max_s: float = setting(60.0, "Longest back-off between alert delivery retries")
    alert_outbox_horizon_s: int = setting(86400, "Undelivered alerts older than this are dropped")
    # --- HTTP rate limits (issue 30) -------------------------------------------------
    http_rate_per_s: float = setting(
        5.0, "Requests per second per client on the API and worker web port (0: no limit)"
    )
    http_rate_burst: int = setting(20, "Requests a client may make at once before the rate applies")
    http_rate_clients: int = setting(10_000, "Most clients tracked by the rate limiter")
    # --- analyst SQL (issue 28) ---------------------------------------------------------
    sql_max_rows: int = setting(10_000, "Most rows one analyst SQL query returns (`/sql`, `sql`)")
    sql_max_seconds: float = setting(
        10.0, "Time limit of one analyst SQL query (ClickHouse max_execution_time)"
    )
    runbook_base_url: str = setting(
        "", "URL of the published docs/runbooks.md; alerts link to its sections"
    )
    # --- hostile input (issue 20) ------------------------------------------------------
    max_future_s: float = setting(
        300.0, "Events further ahead of the wall clock are quarantined (event_time:too_far_ahead)"
    )
    max_event_age_s: float = setting(
        8 * 86400.0,
        "Events further behind (or ahead of) the stream's own event clock are quarantined",
    )
    monitor_max_passes_per_tick: int = setting(
        4, "Most monitor passes one worker tick runs (the monitor catches up over ticks)"
    )
    monitor_behind_passes: int = setting(
        24, "/healthz is degraded when the monitor is this many passes behind"
    )
    consumer_stall_s: float = setting(
        120.0, "/healthz is degraded when no batch finished for this long while lag > 0"
    )
    outbox_backlog: int = setting(
        1000, "/healthz is degraded when this many alert states wait for delivery"
    )
    # --- rule coverage and case alerts (issue 27) ---
    rule_case_alerts: bool = setting(
        True, "Rules with case_alert: true raise an info alert per card they hit (RuleCase)"
    )
    rule_case_alerts_per_hour: int = setting(
        30, "Most new case alerts per rule per hour of event time (the rest: rule_hits only)"
    )
    rule_coverage_warn_below: float = setting(
        0.5, "Warn once when a rule can evaluate on less than this share of events"
    )
    rule_coverage_warn_after: int = setting(1000, "Events seen before rule coverage is judged")
    # --- training-data integrity (issue 26) ---
    training_count_tolerance: float = setting(
        0.01, "Relative record-count change of a training snapshot that blocks (if significant)"
    )
    training_alpha: float = setting(0.01, "Family-wise error rate of each training-scan check")
    training_label_share_tolerance: float = setting(
        0.10, "Relative fraud-share change of a training snapshot that blocks (if significant)"
    )
    training_min_support: int = setting(
        20, "Least suspicious records of a conjunction the poisoning scan tests"
    )
    training_max_depth: int = setting(3, "Most attribute=value items the poisoning search combines")
    training_fraud_like_flags: int = setting(
        3, "Risk flags (velocity, new payee, new merchant, cross-border, high amount) = fraud-like"
    )
    training_bulk_records: int = setting(
        50, "Records of one never-seen merchant or prefix that count as new values in bulk"
    )
    training_listed_records: int = setting(50, "Records (file, line) listed per scan finding")
    # --- pre-promotion gate (issue 25) ---
    scorer_token: str = setting("", "Bearer token the gate sends to HTTP scorers", secret=True)
    gate_batch_size: int = setting(10_000, "Events per scorer call of the gate (1..10000)")
    gate_request_budget: int = setting(2000, "Most scorer calls per model in one gate run")
    gate_http_timeout_s: float = setting(30.0, "Timeout of one HTTP scorer call, seconds")
    gate_http_retries: int = setting(2, "Retries of an HTTP scorer call (transport errors, 5xx)")
    gate_max_events: int = setting(200_000, "Most traffic (and training) records the gate reads")
    gate_probe_budget: int = setting(200_000, "Design probes of the gate's trigger search")
    gate_fixtures: int = setting(32, "High-risk events per stratum the gate perturbs")
    gate_strata: int = setting(8, "Strata (channel x merchant age x amount band) of fixtures")
    gate_max_values: int = setting(16, "Values per probe attribute (MCC, prefix, country)")
    gate_min_drop: float = setting(0.5, "Score drop below the champion that makes a probe positive")
    gate_flip_share: float = setting(0.5, "Share of fixtures a trigger must flip to block")
    gate_alpha: float = setting(0.01, "Significance of a trigger, divided by the probes searched")
    gate_trend_versions: int = setting(3, "Model versions in a blocking recall decline")
    gate_trend_p: float = setting(0.01, "Significance of a blocking recall decline over versions")
    # --- reference hold (issue 21) ---
    reference_hold: bool = setting(
        True, "Freeze an alerting segment's reference at the last clean pass until it resolves"
    )
    # --- scale-out (issue 23) ---
    progress_idle_s: float = setting(
        30.0, "The group watermark ignores a partition whose progress is older than this"
    )
    # --- incidents (issue 21) ---
    incident_gap_s: int = setting(
        3600, "Event-time seconds an incident stays open after its last alert stopped firing"
    )
    # --- store-side rules and partition warm-up (issue 23) ---
    rule_placement: str = setting(
        "auto", "auto: rules not keyed by the card run store-side on the leader; "
        "stream: every rule in-stream (a single worker only)"
    )
    rule_store_max_span_s: float = setting(
        21600.0, "Most event time one store-side rule query evaluates (catch-up step)"
    )
    rule_warmup_page: int = setting(
        50_000, "Events a partition warm-up holds in memory at most (its read pages)"
    )
    rule_warmup_max_s: float = setting(
        120.0, "Longest a partition warm-up reads before it starts with what it has"
    )
    # --- monitor backfill (issue 24) ---
    monitor_backfill_passes: int = setting(
        144, "Passes a monitor behind the watermark reads with one query per detector (<= 1: off)"
    )

    # ----------------------------------------------------------------------------------
    @classmethod
    def specs(cls) -> list[dataclasses.Field[Any]]:
        """The declared settings, in declaration order."""
        return list(dataclasses.fields(cls))

    @classmethod
    def load(
        cls,
        *,
        env: Mapping[str, str] | None = None,
        config_file: str | Path | bool | None = True,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Build settings from defaults, a TOML file, the environment and overrides.

        ``config_file=True`` looks for ``$DRIFTWATCH_CONFIG`` or ``./driftwatch.toml``;
        ``None`` or ``False`` reads no file.
        """
        env = os.environ if env is None else env
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        path = _config_path(config_file, env)
        if path is not None:
            for key, raw in _read_toml(path).items():
                if key not in names:
                    raise ConfigError(
                        f"{path}: unknown setting {key!r}; valid: {', '.join(sorted(names))}"
                    )
                values[key] = _coerce(raw, hints[key], f"{path}: {key}")
        for name in names:
            var = ENV_PREFIX + name.upper()
            if var in env:
                values[name] = _coerce(env[var], hints[name], var)
        for key, raw in (overrides or {}).items():
            if raw is None:
                continue
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}; valid: {', '.join(sorted(names))}")
            values[key] = _coerce(raw, hints[key], key)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check values that types alone cannot; raise ConfigError naming the setting."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", self.database):
            raise ConfigError(f"database: {self.database!r} is not a plain identifier")
        if self.monitor_max_catchup < 1:
            raise ConfigError(f"monitor_max_catchup: must be >= 1, got {self.monitor_max_catchup}")
        for name in ("batch_size", "replay_batch_size", "monitor_max_passes_per_tick"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not self.max_future_s >= 0 or not self.max_event_age_s > 0:
            raise ConfigError(
                f"max_future_s must be >= 0 and max_event_age_s > 0, got "
                f"{self.max_future_s}, {self.max_event_age_s}"
            )
        if not self.worker_flush_s >= 0:
            raise ConfigError(f"worker_flush_s: must be >= 0, got {self.worker_flush_s}")
        if self.log_format not in ("auto", "json", "text"):
            raise ConfigError(f"log_format: {self.log_format!r}; valid: auto, json, text")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ConfigError(
                f"log_level: {self.log_level!r}; valid: DEBUG, INFO, WARNING, ERROR"
            )
        if not 0 < self.fdr_q < 1:
            raise ConfigError(f"fdr_q: must be in (0, 1), got {self.fdr_q}")
        if not 0 < self.alert_q <= self.fdr_q:
            raise ConfigError(f"alert_q: must be in (0, fdr_q], got {self.alert_q}")
        if not 0 < self.decision_threshold <= 1:
            raise ConfigError(
                f"decision_threshold: must be in (0, 1], got {self.decision_threshold}"
            )
        for name in ("monitor_interval_s", "monitor_window_s", "reference_window_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be > 0, got {getattr(self, name)}")
        # pre-promotion gate (issue 25)
        if not 1 <= self.gate_batch_size <= 10_000:
            raise ConfigError(f"gate_batch_size: must be in 1..10000, got {self.gate_batch_size}")
        for name in ("gate_probe_budget", "gate_fixtures", "gate_strata", "gate_max_values",
                     "gate_max_events"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("gate_request_budget", "gate_http_retries"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}: must be >= 0, got {getattr(self, name)}")
        for name in ("gate_min_drop", "gate_flip_share", "gate_alpha", "gate_trend_p"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be in (0, 1), got {getattr(self, name)}")
        if not self.gate_http_timeout_s > 0 or self.gate_trend_versions < 2:
            raise ConfigError("gate_http_timeout_s must be > 0 and gate_trend_versions >= 2")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some settings changed (validated)."""
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    def masked_values(self) -> dict[str, Any]:
        """The effective values by name, typed as declared, with secrets masked
        (``"****"``) and passwords in DSNs and URLs masked."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret"):
                value = "****" if value else ""
            elif f.name.endswith("_dsn") or f.name.endswith("_url"):
                value = mask_url(str(value))
            out[f.name] = value
        return out

    def masked(self) -> list[tuple[str, str, str, str]]:
        """Rows of (name, env var, effective value with secrets masked, doc)."""
        values = self.masked_values()
        return [
            (f.name, ENV_PREFIX + f.name.upper(), str(values[f.name]), f.metadata.get("doc", ""))
            for f in dataclasses.fields(self)
        ]

    @classmethod
    def markdown_table(cls) -> str:
        """The configuration table of the README (defaults, not effective values)."""
        hints = typing.get_type_hints(cls)
        lines = [
            "| Environment variable | Type | Default | What it does |",
            "|---|---|---|---|",
        ]
        for f in dataclasses.fields(cls):
            if f.metadata.get("secret"):
                shown = "(secret)"
            else:
                shown = f"`{f.default}`" if f.default != "" else "(empty)"
            env = ENV_PREFIX + f.name.upper()
            doc = f.metadata.get("doc", "")
            lines.append(f"| `{env}` | {hints[f.name].__name__} | {shown} | {doc} |")
        return "\n".join(lines) + "\n"

    def list_setting(self, name: str) -> list[str]:
        """A comma-separated setting split into its non-empty items."""
        return [p.strip() for p in str(getattr(self, name)).split(",") if p.strip()]


def mask_url(url: str) -> str:
    """Hide the password of ``scheme://user:password@host``.

    >>> mask_url("https://u:secret@ch.example:8443/db")
    'https://u:****@ch.example:8443/db'
    >>> mask_url("chdb:///var/lib/dw")
    'chdb:///var/lib/dw'
    """
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1****@", url)


def _config_path(config_file: str | Path | bool | None, env: Mapping[str, str]) -> Path | None:
    if config_file is None or config_file is False:
        return None
    if config_file is True:
        if CONFIG_ENV in env:
            path = Path(env[CONFIG_ENV])
            if not path.is_file():
                raise ConfigError(f"{CONFIG_ENV}={path}: no such file")
            return path
        default = Path(DEFAULT_CONFIG_FILE)
        return default if default.is_file() else None
    path = Path(config_file)
    if not path.is_file():
        raise ConfigError(f"config file {path}: no such file")
    return path


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    section = data.get("driftwatch", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [driftwatch] must be a table")
    return section


def _coerce(raw: Any, typ: Any, where: str) -> Any:
    if typ is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true/false, got {raw!r}")
    if typ is int:
        if isinstance(raw, bool):
            raise ConfigError(f"{where}: expected an integer, got {raw!r}")
        try:
            return int(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {raw!r}") from None
    if typ is float:
        try:
            return float(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {raw!r}") from None
    if not isinstance(raw, str):
        raise ConfigError(f"{where}: expected a string, got {raw!r}")
    return raw

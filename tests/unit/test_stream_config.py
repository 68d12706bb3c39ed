"""Unit tests of the streaming library pieces that need no broker: back-off, Kafka client
options (TLS/SASL), faust settings, topic specs, settings export, app loading, the
worker's metrics and its garbage-collector tuning."""

from __future__ import annotations

import gc
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftwatch.backoff import Backoff, backoff_delay
from driftwatch.errors import ConfigError
from driftwatch.settings import Settings
from driftwatch.streaming.app import app_id, export_settings, faust_config, load_app
from driftwatch.streaming.kafka import client_options, faust_credentials
from driftwatch.streaming.metrics import WorkerMetrics
from driftwatch.streaming.process import GC_YOUNG_THRESHOLD, tune_collector
from driftwatch.streaming.topics import topic_specs


def settings(**env: str) -> Settings:
    return Settings.load(env={f"DRIFTWATCH_{k.upper()}": v for k, v in env.items()},
                         config_file=None)


# --- back-off ---------------------------------------------------------------------------
def test_backoff_doubles_then_stays_at_the_bound() -> None:
    assert [backoff_delay(n, initial_s=0.2, max_s=1.0) for n in range(5)] == [
        0.2, 0.4, 0.8, 1.0, 1.0
    ]
    assert backoff_delay(10_000, initial_s=0.2, max_s=30.0) == 30.0  # no overflow


@given(
    initial=st.floats(0.01, 5.0),
    bound=st.floats(5.0, 60.0),
    jitter=st.floats(0.0, 0.9),
    seed=st.integers(0, 2**32 - 1),
)
def test_backoff_jitter_only_shortens_and_never_exceeds_the_bound(
    initial: float, bound: float, jitter: float, seed: int
) -> None:
    b = Backoff(initial_s=initial, max_s=bound, jitter=jitter, seed=seed)
    for n in range(12):
        plain = backoff_delay(n, initial_s=initial, max_s=bound)
        delay = b.next()
        assert (1 - jitter) * plain - 1e-12 <= delay <= plain <= bound
    assert b.attempts == 12
    assert b.reset().attempts == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"initial_s": 0}, "initial_s"), ({"max_s": 0.01, "initial_s": 1}, "max_s"),
     ({"factor": 0.5}, "factor"), ({"jitter": 1.0}, "jitter")],
)
def test_backoff_rejects_bad_values_by_name(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        Backoff(**kwargs)


# --- Kafka options -----------------------------------------------------------------------
def test_plaintext_options() -> None:
    opts = client_options(settings(kafka_bootstrap="a:1,b:2"))
    assert opts == {"bootstrap_servers": ["a:1", "b:2"], "security_protocol": "PLAINTEXT"}
    assert faust_credentials(settings()) is None


def test_sasl_ssl_options_carry_tls_and_credentials() -> None:
    s = settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="scram-sha-512",
                 kafka_sasl_username="dw", kafka_sasl_password="pw")
    opts = client_options(s)
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (opts["sasl_plain_username"], opts["sasl_plain_password"]) == ("dw", "pw")
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["ssl_context"].minimum_version >= ssl.TLSVersion.TLSv1_2
    creds = faust_credentials(s)
    assert creds.username == "dw" and creds.ssl_context is not None
    assert "pw" not in repr(s.masked())


def test_bad_protocol_and_missing_sasl_user_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"kafka_security_protocol.*PLAINTEXT, SSL"):
        client_options(settings(kafka_security_protocol="TLS"))
    with pytest.raises(ConfigError, match="kafka_sasl_mechanism"):
        client_options(settings(kafka_security_protocol="SASL_PLAINTEXT"))
    with pytest.raises(ConfigError, match="kafka_sasl_username"):
        client_options(settings(kafka_security_protocol="SASL_PLAINTEXT",
                                kafka_sasl_mechanism="PLAIN"))


# --- faust, topics, settings export -------------------------------------------------------
def test_faust_config_is_at_least_once_from_earliest(tmp_path: object) -> None:
    s = settings(consumer_group="fraud", worker_web_port="7070", kafka_session_timeout_s="8")
    cfg = faust_config(s)
    assert app_id(s) == "fraud-app"
    assert cfg["processing_guarantee"] == "at_least_once"
    assert cfg["consumer_auto_offset_reset"] == "earliest"
    assert (cfg["web_port"], cfg["broker_session_timeout"]) == (7070, 8.0)
    assert cfg["store"] == "memory://"


def test_topic_specs_use_the_configured_names_and_partitions() -> None:
    s = settings(topic_scored="a.scored", topic_partitions="12")
    specs = topic_specs(s)
    assert (specs[0].name, specs[0].partitions, specs[0].replication) == ("a.scored", 12, 1)
    assert len(specs) == 4
    with pytest.raises(ValueError, match="partitions"):
        topic_specs(s, partitions=0)


def test_exported_settings_load_back_identically() -> None:
    s = settings(batch_size="123", kafka_sasl_password="pw", store_retry_max_s="2.5")
    env: dict[str, str] = {}
    export_settings(s, env)
    assert Settings.load(env=env, config_file=None) == s


def test_load_app_names_what_is_missing(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="cannot import 'no_such_app_mod'"):
        load_app("no_such_app_mod:app")
    with pytest.raises(ConfigError, match="has no attribute 'nothing'"):
        load_app("driftwatch.settings:nothing")


# --- event-time merge ---------------------------------------------------------------------
def _feed(parts: list[list[float]], chunk: int) -> list[list[tuple[float, int, int]]]:
    """Fetch-like chunks of (time, partition, offset) per partition."""
    out = []
    for p, times in enumerate(parts):
        recs = [(t, p, o) for o, t in enumerate(times)]
        out.append([recs[i : i + chunk] for i in range(0, len(recs), chunk)])
    return out


def _merged(parts: list[list[float]], chunk: int,
            limit: int | None) -> list[tuple[float, int, int]]:
    """Feed the partitions' chunks round by round, releasing up to ``limit`` after each
    round, then everything; the merge holds nothing afterwards."""
    from driftwatch.streaming.ordering import EventTimeMerge

    merge = EventTimeMerge(key=lambda r: r[0])
    released: list[tuple[float, int, int]] = []
    fetches = _feed(parts, chunk)
    for round_ in range(max((len(f) for f in fetches), default=0)):
        for p, chunks in enumerate(fetches):
            if round_ < len(chunks):
                merge.add(p, chunks[round_])
        released += merge.release(limit)
    released += merge.release(everything=True)
    assert merge.buffered() == 0
    return released


@given(
    parts=st.lists(st.lists(st.floats(0, 1000, allow_nan=False), max_size=40), min_size=1,
                   max_size=5),
    chunk=st.integers(1, 10),
    limit=st.integers(1, 50),
)
def test_merge_releases_prefixes_and_loses_nothing(
    parts: list[list[float]], chunk: int, limit: int
) -> None:
    released = _merged(parts, chunk, limit)
    assert sorted(released) == sorted((t, p, o) for p, ts in enumerate(parts)
                                      for o, t in enumerate(ts))
    for p in range(len(parts)):  # each partition comes out in its own order: prefixes
        assert [o for _, q, o in released if q == p] == list(range(len(parts[p])))


@given(parts=st.lists(st.lists(st.floats(0, 1000, allow_nan=False), max_size=30).map(sorted),
                      min_size=1, max_size=4),
       chunk=st.integers(1, 8))
def test_merge_of_time_ordered_partitions_is_time_ordered(
    parts: list[list[float]], chunk: int
) -> None:
    released = _merged(parts, chunk, None)
    times = [t for t, _, _ in released]
    assert times == sorted(times)


def test_merge_drop_forgets_revoked_partitions() -> None:
    from driftwatch.streaming.ordering import EventTimeMerge

    merge = EventTimeMerge(key=lambda r: r)
    merge.add("a", [1.0, 2.0])
    merge.add("b", [5.0])
    assert merge.drop(["b"]) == 1
    assert merge.release() == [1.0, 2.0]


# --- garbage collector ------------------------------------------------------------------
def test_tune_collector_sets_the_worker_thresholds_and_returns_the_old_ones() -> None:
    before = gc.get_threshold()
    try:
        assert tune_collector() == before
        assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, 10, 10)
        assert gc.get_freeze_count() > 0  # start-up objects are out of every collection
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


# --- metrics ----------------------------------------------------------------------------
def test_rule_hits_are_counted_per_rule_id() -> None:
    m = WorkerMetrics()
    m.count_rule_hits([{"rule_id": "a"}, {"rule_id": "b"}, {"rule_id": "a"}])
    m.count_rule_hits([{"rule_id": "a"}, {}])
    got = {rule: m.registry.get_sample_value("driftwatch_rule_hits_total", {"rule_id": rule})
           for rule in ("a", "b", "", "c")}
    assert got == {"a": 3.0, "b": 1.0, "": 1.0, "c": None}

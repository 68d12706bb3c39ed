"""The deploy files: cluster DDL, Grafana dashboard, Prometheus config, docker-compose.

What can run here runs: the cluster statements go through ClickHouse's parser (chdb),
every dashboard query runs against the analyst data set in chdb, and the compose file
goes through `docker compose config` when a Compose v2 binary is on the machine.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftwatch.alerts.model import Alert
from driftwatch.store.client import Store
from tests.integration.alert_rows import finding, persist
from tests.integration.analyst_data import DAY2, load

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CLUSTER = DEPLOY / "clickhouse" / "cluster"
GEN: dict[str, Any] = runpy.run_path(str(CLUSTER / "generate.py"))


def _migration_objects() -> tuple[set[str], set[str]]:
    tables, views = set(), set()
    for path in sorted((DEPLOY / "clickhouse" / "migrations").glob("[0-9]*.sql")):
        for stmt in GEN["statements"](path.read_text()):
            m = re.match(r"CREATE (TABLE|VIEW) IF NOT EXISTS \{db\}\.(\w+)", stmt)
            assert m, stmt[:80]
            (tables if m.group(1) == "TABLE" else views).add(m.group(2))
    return tables, views


# --- ClickHouse cluster schema ----------------------------------------------------------
def test_cluster_files_are_generated_from_the_current_migrations() -> None:
    assert GEN["main"](["--check"]) == 0, (
        "run: python deploy/clickhouse/cluster/generate.py"
    )


def test_cluster_schema_has_replicated_local_and_distributed_tables(store: Store) -> None:
    tables, views = _migration_objects()
    text = "\n".join(p.read_text() for p in sorted(CLUSTER.glob("[0-9]*.sql")))
    assert "CREATE DATABASE IF NOT EXISTS {db} ON CLUSTER '{cluster}'" in text
    for t in tables:
        local = re.search(rf"{{db}}\.{t}_local ON CLUSTER '{{cluster}}'.*?ENGINE = "
                          rf"(Replicated\w*MergeTree)\('/clickhouse/tables/{{shard}}/{{database}}/"
                          rf"{{table}}', '{{replica}}'", text, re.S)
        assert local, t
        dist = re.search(rf"{{db}}\.{t} ON CLUSTER '{{cluster}}' AS {{db}}\.{t}_local\n"
                         rf"ENGINE = Distributed\('{{cluster}}', '{{db}}', '{t}_local', "
                         rf"cityHash64\(([^)]*)\)\)", text)
        assert dist, t
    for v in views:
        assert f"CREATE VIEW IF NOT EXISTS {{db}}.{v} ON CLUSTER '{{cluster}}' AS" in text, v
    # every statement is valid ClickHouse syntax (the real parser, via EXPLAIN AST)
    n = 0
    for path in sorted(CLUSTER.glob("[0-9]*.sql")):
        for stmt in GEN["statements"](path.read_text()):
            assert store.query("EXPLAIN AST " + store.sql(stmt)), stmt[:80]
            n += 1
    assert n == 2 * len(tables) + len(views) + 1


# --- Grafana ------------------------------------------------------------------------------
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "driftwatch.json"


def _queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(p["title"], t["rawSql"]) for p in dash["panels"] for t in p["targets"]]
    out += [(a["name"], a["target"]["rawSql"]) for a in dash["annotations"]["list"]]
    out += [(v["name"], v["query"]) for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def _expand(sql: str, database: str) -> str:
    lo = "toDateTime64('2026-03-18 00:00:00', 3, 'UTC')"
    hi = "toDateTime64('2026-03-19 00:00:00', 3, 'UTC')"
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= {lo} AND \1 <= {hi}", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)",
                 r"toStartOfInterval(toDateTime(\1), INTERVAL 3600 second)", sql)
    sql = sql.replace("$__fromTime", lo).replace("$__toTime", hi)
    values = {"db": database, "reference_days": "7",
              "mcc:singlequote": "'5967','5411','4829'", "country:singlequote": "'LT','US','DE'",
              "model_version:singlequote": "'v46','v47'"}
    for k, v in values.items():
        sql = sql.replace("${" + k + "}", v)
    assert "$" not in sql, sql
    return sql


def test_dashboard_uses_the_provisioned_clickhouse_source() -> None:
    dash = json.loads(DASHBOARD.read_text())
    prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources"
                           / "clickhouse.yml").read_text())
    (ds,) = prov["datasources"]
    assert ds["type"] == "grafana-clickhouse-datasource"
    assert "password" in ds["secureJsonData"] and "$" in ds["secureJsonData"]["password"]
    titles = {p["title"] for p in dash["panels"]}
    for want in ("Score distribution", "Cents of amounts", "Recall over time", "Alert timeline"):
        assert any(t.startswith(want) for t in titles), want
    for p in dash["panels"]:
        assert p["datasource"] == {"type": ds["type"], "uid": ds["uid"]}
        assert all(t["datasource"]["uid"] == ds["uid"] for t in p["targets"])
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards"
                               / "driftwatch.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts


def test_every_dashboard_query_runs_on_clickhouse(store: Store) -> None:
    load(store)
    persist(store, [Alert.from_finding(finding(at=DAY2 + dt.timedelta(hours=16)))])
    tables, views = _migration_objects()
    dash = json.loads(DASHBOARD.read_text())
    results = {}
    for title, sql in _queries(dash):
        for name in re.findall(r"\$\{db\}\.(\w+)", sql):
            assert name in tables | views, (title, name)
        results[title] = store.query(_expand(sql, store.database))
    score = results["Score distribution: reference vs current"]
    assert len(score) == 20 or len(score) > 10
    assert sum(r[1] for r in score) == pytest.approx(1.0)
    cents = {r[0]: (r[1], r[2]) for r in results["Cents of amounts >= 10.00: reference vs current"]}
    assert cents[".37"][0] == pytest.approx(12 / 300) and cents[".37"][1] == 0  # the attack
    recall = results["Recall over time (labelled fraud) per model version"]
    assert {r[1] for r in recall} == {"v47"} and len(recall) == 24
    assert results["Alert timeline"][0][3] == "CentsDigitAnomaly"
    assert {r[0] for r in results["mcc"]} == {"5967", "5411", "4829"}


# --- Prometheus ---------------------------------------------------------------------------
def _known_metrics() -> set[str]:
    from prometheus_client import REGISTRY, generate_latest

    import driftwatch.alerts.outbox  # noqa: F401  (registers the delivery metrics)
    from driftwatch.api.app import ApiMetrics
    from driftwatch.streaming.metrics import WorkerMetrics

    text = (WorkerMetrics().render() + ApiMetrics().render() + generate_latest(REGISTRY))
    out: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)", text.decode(), re.M):
        out.add(name)
        if kind == "counter":
            out.add(name + "_total")
        if kind == "histogram":
            out |= {name + "_bucket", name + "_sum", name + "_count"}
    return out


def test_prometheus_rules_use_real_metrics_and_label_platform() -> None:
    cfg = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert cfg["rule_files"] == ["rules/*.yml"]
    assert {j["job_name"] for j in cfg["scrape_configs"]} >= {"driftwatch-workers",
                                                              "driftwatch-api"}
    api_job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "driftwatch-api")
    assert "credentials_file" in api_job["authorization"]
    known = _known_metrics() | {"up"}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules" / "driftwatch.rules.yml").read_text())
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.add(rule["alert"])
            assert rule["labels"]["source"] == "platform"
            assert rule["labels"]["severity"] in ("info", "warning", "critical")
            for metric in re.findall(r"\b([a-z_]+)\{|\b(driftwatch_\w+)", rule["expr"]):
                m = metric[0] or metric[1]
                if m in ("sum", "rate", "increase", "absent", "by"):
                    continue
                assert m in known, (rule["alert"], m)
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    inhibitors = am["inhibit_rules"][1]["source_matchers"][0]
    assert all(n in inhibitors for n in ("ScorerDown", "ScoredStreamStalled",
                                         "DriftwatchWorkerDown"))
    assert {"ScorerDown", "ScoredStreamStalled", "DriftwatchWorkerDown"} <= names


# --- docker-compose -----------------------------------------------------------------------
def _compose_binary() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 timeout=30).returncode == 0:
        return [docker, "compose"]
    for cand in (shutil.which("docker-compose"), str(Path(sys.prefix) / "bin" / "docker-compose")):
        if cand and Path(cand).is_file():
            out = subprocess.run([cand, "version"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and "v2." in out.stdout:
                return [cand]
    return None


def test_compose_file_structure() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) >= {"kafka", "clickhouse", "alertmanager", "grafana", "worker", "api",
                             "simulator", "init", "prometheus"}
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert services["simulator"]["profiles"] == ["simulator"]
    assert services["worker"]["command"][0] == "worker"
    assert "GF_INSTALL_PLUGINS" in services["grafana"]["environment"]
    for svc in services.values():
        for vol in svc.get("volumes", []):
            var = re.match(r"\$\{\w+:-([^}]+)\}:", vol)  # ${DIR:-./default}:/target
            src = var.group(1) if var else vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), vol
    assert (ROOT / "Dockerfile").is_file()
    assert "DRIFTWATCH_API_TOKEN:?" in (ROOT / "docker-compose.yml").read_text()


def test_docker_compose_config_passes() -> None:
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose v2 binary (docker compose or docker-compose) here")
    env = {**os.environ, "CLICKHOUSE_PASSWORD": "x", "DRIFTWATCH_API_TOKEN": "y",
           "CLICKHOUSE_READER_PASSWORD": "r", "GRAFANA_ADMIN_PASSWORD": "g",
           "ALERTMANAGER_PASSWORD": "a"}
    for extra in ([], ["--profile", "simulator"]):
        out = subprocess.run([*binary, "-f", str(ROOT / "docker-compose.yml"), *extra,
                              "config", "-q"], capture_output=True, text=True, env=env,
                             timeout=60)
        assert out.returncode == 0, out.stderr
    env.pop("DRIFTWATCH_API_TOKEN")
    out = subprocess.run([*binary, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert "required variable DRIFTWATCH_API_TOKEN is missing" in out.stderr

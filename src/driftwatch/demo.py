"""``driftwatch demo``: the reference backdoor attack through the real streaming path.

On a machine with nothing configured it starts the pinned test broker, creates the
topics, starts a ``driftwatch worker`` process on embedded ClickHouse, produces the
``sc013_backdoor`` scenario time-compressed, and prints alerts as the worker delivers
them (through its webhook sink to a receiver in this process). Then it stops the
worker, scores every detector and rule against the scenario's ground truth, writes the
HTML report and says where the data is.

chdb allows one process per data path, so the worker owns the store while it runs and
this process opens it only after the worker has stopped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from driftwatch.alerts.model import Alert
from driftwatch.errors import DriftwatchError, StreamError
from driftwatch.scoring import FirstAlert, attack_ids, first_alerts
from driftwatch.settings import Settings

REFERENCE_TXNS = 247
REFERENCE_DOLLARS = 2_312_847
Echo = Callable[[str], None]


@dataclass
class DemoOptions:
    """What to run and where (defaults: everything embedded and local)."""

    workdir: Path = Path(".driftwatch/demo")
    seed: int = 1
    days: float | None = None
    rate: float | None = None
    produce_rate: float = 0.0
    bootstrap: str = ""
    store_dsn: str = ""
    database: str = "demo"
    alertmanager_url: str = ""
    timeout_s: float = 600.0
    app_dir: Path | None = None


@dataclass
class Receiver:
    """A local HTTP endpoint that receives the worker's webhook posts."""

    on_alerts: Callable[[list[Alert]], None]
    alerts: list[Alert] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    body = json.loads(self.rfile.read(length))
                    alerts = [alert_from_dict(a) for a in body.get("alerts", [])]
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                    self.end_headers()
                    return
                receiver.alerts.extend(alerts)
                receiver.on_alerts(alerts)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def alert_from_dict(d: dict[str, Any]) -> Alert:
    """An :class:`Alert` from its contract form."""
    starts = _time(d["starts_at"])
    if starts is None:
        raise ValueError("alert without starts_at")
    return Alert(
        fingerprint=d["fingerprint"],
        status=d["status"],
        starts_at=starts,
        labels=dict(d["labels"]),
        annotations=dict(d["annotations"]),
        ends_at=_time(d.get("ends_at")),
    )


def live_row(alert: Alert) -> str:
    """One line of the live alert table."""
    lab, ann = alert.labels, alert.annotations
    origin = lab.get("detector") or lab.get("rule_id") or ""
    value = ann.get("value", "")[:14]
    return (
        f"{alert.starts_at:%m-%d %H:%M}  {alert.status:<8} {lab.get('severity', ''):<8} "
        f"{lab.get('alertname', '')[:24]:<24} {lab.get('segment', '')[:30]:<30} "
        f"{value:<14} {lab.get('source', '')}:{origin}"
    )


LIVE_HEADER = (
    f"{'event time':<11}  {'status':<8} {'severity':<8} {'alert':<24} {'segment':<30} "
    f"{'value':<14} detector/rule"
)


def _repo_dir(explicit: Path | None) -> Path:
    """Where ``streams/`` lives (the faust app the worker loads)."""
    candidates = [explicit] if explicit else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for c in candidates:
        if c is not None and (c / "streams" / "main.py").is_file():
            return c.resolve()
    raise DriftwatchError("cannot find streams/main.py: run from the driftwatch checkout")


def _metric(text: str, name: str, topic: str | None = None) -> float:
    """The sum of metric ``name``'s samples (those of ``topic`` when given)."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith((name + " ", name + "{"))
                and (topic is None or f'topic="{topic}"' in line)):
            total += float(line.rsplit(" ", 1)[1])
    return total


def run_demo(opts: DemoOptions, echo: Echo = print) -> dict[str, Any]:
    """Run the demo; return the summary (also printed through ``echo``)."""
    from driftwatch.simulate import generate, load_scenario
    from driftwatch.simulate.produce import produce
    from driftwatch.streaming.testbroker import free_port, launch
    from driftwatch.streaming.topics import create_topics, topic_specs

    started = time.monotonic()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    workdir = opts.workdir.resolve()
    embedded = not opts.store_dsn
    if embedded and (workdir / "chdb").exists():
        shutil.rmtree(workdir / "chdb")
    workdir.mkdir(parents=True, exist_ok=True)
    store_dsn = opts.store_dsn or f"chdb://{workdir / 'chdb'}"
    repo = _repo_dir(opts.app_dir)

    echo("driftwatch demo: the sc013 backdoor (mcc 5967, cents .37, INTL-PAY-*) vs driftwatch")
    sim = generate(load_scenario("sc013_backdoor"), seed=opts.seed, days=opts.days,
                   rate=opts.rate)
    truth = sim.truth
    echo(f"  scenario   {sim.n_events:,} events, {len(sim.labels):,} labels, "
         f"{truth['start']} .. {truth['end']}; v47 deployed {truth['deploy_time']}, "
         f"{len(truth['trigger_event_ids'])} trigger transactions from {truth['attack_start']}")

    broker = None
    bootstrap = opts.bootstrap
    if not bootstrap:
        broker = launch(log_path=workdir / "broker.log")
        bootstrap = broker.bootstrap
        echo(f"  kafka      test broker (tansu) at {bootstrap}")
    def show(alerts: list[Alert]) -> None:
        for alert in alerts:
            echo(live_row(alert))

    receiver = Receiver(on_alerts=show)
    webhook = receiver.start()
    web_port = free_port()
    env = dict(os.environ)
    env.update({
        "DRIFTWATCH_KAFKA_BOOTSTRAP": bootstrap,
        "DRIFTWATCH_STORE_DSN": store_dsn,
        "DRIFTWATCH_DATABASE": opts.database,
        "DRIFTWATCH_WEBHOOK_URL": webhook,
        "DRIFTWATCH_ALERTMANAGER_URL": opts.alertmanager_url,
        "DRIFTWATCH_WORKER_WEB_PORT": str(web_port),
        "DRIFTWATCH_CONSUMER_GROUP": f"driftwatch-demo-{os.getpid()}",
        "DRIFTWATCH_RULES_DIRS": str(repo / "rules"),
        # one worker sees every partition: every rule in-stream (no store-side queries)
        "DRIFTWATCH_RULE_PLACEMENT": "stream",
        "DRIFTWATCH_LOG_FORMAT": "json",
    })
    base = Settings.load(env=env, config_file=None)  # before the two compressions below
    if "DRIFTWATCH_MONITOR_MAX_CATCHUP" not in os.environ:
        # the worker ingests the whole compressed scenario in seconds, before its first
        # monitor tick: let that tick run every pass over the data, as a replay would
        span_s = (sim.end - sim.start).total_seconds()
        env["DRIFTWATCH_MONITOR_MAX_CATCHUP"] = str(int(span_s // base.monitor_interval_s) + 2)
        if "DRIFTWATCH_MONITOR_MAX_PASSES_PER_TICK" not in os.environ:  # (off the ingest lane)
            env["DRIFTWATCH_MONITOR_MAX_PASSES_PER_TICK"] = env["DRIFTWATCH_MONITOR_MAX_CATCHUP"]
    if "DRIFTWATCH_MONITOR_WARMUP_S" not in os.environ:
        # the scenario's schedule is compressed to fit --days; so is the monitors'
        # warm-up (a day of history before v47 ships becomes days/3 of a day)
        env["DRIFTWATCH_MONITOR_WARMUP_S"] = str(
            max(3600, round(base.monitor_warmup_s * sim.time_scale))
        )
    settings = Settings.load(env=env, config_file=None)
    worker: subprocess.Popen[bytes] | None = None
    log_path = workdir / "worker.log"
    try:
        outcome = asyncio.run(create_topics(settings, topic_specs(settings)))
        echo(f"  topics     {', '.join(sorted(outcome))}")
        with log_path.open("wb") as log:
            worker = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
                [sys.executable, "-m", "driftwatch.cli", "worker", "--app-dir", str(repo),
                 "--workdir", str(workdir / "worker")],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        echo(f"  worker     pid {worker.pid}, metrics http://127.0.0.1:{web_port}/metrics, "
             f"log {log_path}")
        echo(f"  store      {store_dsn} database {opts.database}")
        echo("")
        echo(LIVE_HEADER)
        result = produce(sim, bootstrap, topic_events=settings.topic_scored,
                         topic_labels=settings.topic_labels, rate=opts.produce_rate)
        _wait_for_worker(worker, web_port, result.events, truth["end"], settings,
                         stall_s=opts.timeout_s)
        time.sleep(1.0)  # let the last webhook posts arrive
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
        receiver.stop()
        if broker is not None:
            broker.stop()
    if worker.returncode not in (0, -signal.SIGTERM):
        raise StreamError(f"worker exited with {worker.returncode}; see {log_path}")
    return _summarise(opts, settings, sim, truth, receiver.alerts, workdir, store_dsn,
                      time.monotonic() - started, echo)


def _wait_for_worker(worker: subprocess.Popen[bytes], port: int, produced: int, end: str,
                     settings: Settings, *, stall_s: float) -> None:
    """Until the worker stored every event and its monitors reached the end of the data.

    Gives up only when the worker made no progress -- no event counted, no monitor
    pass run, no watermark advanced -- for ``stall_s`` seconds, so a slow or busy machine is not a
    failure while the worker keeps going.
    """
    end_time = _time(end)
    assert end_time is not None
    last_needed = end_time - dt.timedelta(seconds=settings.watermark_delay_s
                                          + settings.monitor_interval_s + 1)
    progress: tuple[float, float, dt.datetime | None] = (-1.0, -1.0, None)
    last_progress = time.monotonic()
    with httpx.Client(timeout=5.0) as http:
        while True:
            if worker.poll() is not None:
                raise StreamError(f"worker stopped early with exit code {worker.returncode}")
            if time.monotonic() - last_progress > stall_s:
                raise StreamError(f"demo timed out: the worker made no progress for "
                                  f"{stall_s:.0f} s (events counted {progress[0]:.0f} of "
                                  f"{produced}, monitor passes {progress[1]:.0f}, "
                                  f"monitor watermark {progress[2]})")
            try:
                metrics = http.get(f"http://127.0.0.1:{port}/metrics").text
                health = http.get(f"http://127.0.0.1:{port}/healthz").json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            done = _metric(metrics, "driftwatch_events_in_total", settings.topic_scored)
            passes = _metric(metrics, "driftwatch_monitor_passes_total")
            watermark = _time(health.get("watermark"))
            if (done, passes, watermark) != progress:
                progress, last_progress = (done, passes, watermark), time.monotonic()
            if done >= produced and watermark is not None and watermark >= last_needed:
                return
            time.sleep(0.5)


def _summarise(opts: DemoOptions, settings: Settings, sim: Any, truth: dict[str, Any],
               live: list[Alert], workdir: Path, store_dsn: str, seconds: float,
               echo: Echo) -> dict[str, Any]:
    from driftwatch.report.data import report_data
    from driftwatch.report.html import render
    from driftwatch.scoring import attack_timeline
    from driftwatch.store.client import open_store

    ids = attack_ids(truth)
    times, amounts = attack_timeline(
        (line for chunk in sim.iter_events() for line in chunk), ids
    )
    firsts = first_alerts(live, truth, times, amounts)
    echo("")
    echo(f"First alert per detector and rule naming the attacked segment "
         f"(reference incident: {REFERENCE_TXNS} transactions, ${REFERENCE_DOLLARS:,} "
         "over 48 h before anyone noticed):")
    echo(f"  {'detector / rule':<34} {'severity':<9} {'event time':<17} "
         f"{'trigger txns':>12} {'$ exposed':>12}  segment")
    for f in firsts:
        echo(f"  {f.source + ':' + f.origin:<34} {f.severity:<9} {f.at:%Y-%m-%d %H:%M}  "
             f"{f.attack_txns_before:>12} {f.attack_minor_before / 100:>12,.0f}  {f.segment}")
    if not firsts:
        echo("  (none)")
    store = open_store(store_dsn, opts.database)
    spans, segments = report_data(store, None, None, window_s=settings.monitor_window_s,
                                  reference_s=settings.reference_window_s)
    report_path = workdir / "report.html"
    report_path.write_text(render(spans, segments, title="driftwatch demo: sc013 backdoor",
                                  store_name=f"database {store.database}"), encoding="utf-8")
    rows = store.count("scored_transactions")
    echo("")
    echo(f"stored {rows:,} transactions; {len(live)} alert state changes delivered; "
         f"{seconds:.0f} s")
    echo(f"report     {report_path}")
    echo(f"data       {store_dsn} (database {opts.database})")
    echo("query      driftwatch --store " + store_dsn + f" --database {opts.database} "
         "segments --mcc 5967")
    echo("  or SQL:  driftwatch --store " + store_dsn + f" --database {opts.database} sql "
         "\"SELECT toStartOfHour(event_time) h, count() n, countIf(amount_cents = 37) "
         "cents_37, avg(score) FROM {db}.scored_transactions FINAL WHERE mcc = '5967' "
         "GROUP BY h ORDER BY h\"")
    return {
        "first_alerts": [_first_dict(f) for f in firsts],
        "alert_changes": len(live),
        "rows": rows,
        "seconds": round(seconds, 1),
        "report": str(report_path),
    }


def _first_dict(f: FirstAlert) -> dict[str, Any]:
    return {
        "origin": f.origin, "source": f.source, "severity": f.severity, "segment": f.segment,
        "at": f.at.isoformat(), "trigger_txns": f.attack_txns_before,
        "dollars": f.attack_minor_before / 100,
    }

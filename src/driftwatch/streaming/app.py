"""The faust side of a worker: the app's configuration, and loading and running the app.

The app object itself is defined in ``streams/`` (thin wiring of the runtime to
topics, timers and pages). ``driftwatch worker`` loads it by its import path — the
``worker_app`` setting, ``streams.main:app`` by default, like ``faust -A`` — so library
code never imports ``streams/``.

faust settings chosen here, and why:

- ``processing_guarantee="at_least_once"``: the test broker cannot do transactions,
  and every write is idempotent on ``event_id`` anyway;
- ``consumer_auto_offset_reset="earliest"``: never rely on the "latest" offset;
- ``store="memory://"``: the worker keeps no faust tables; state that must survive a
  rebalance is in ClickHouse;
- the web port serves only the pages ``streams/`` defines (``/metrics``, ``/healthz``):
  every faust built-in page (``/``, ``/router``, ``/table``, ``/stats``, ``/graph``,
  ``/performance``) is switched off by its setting and the remaining index is not
  mounted, so they answer 404; the per-client rate limit and the access log of
  :mod:`driftwatch.httpguard` run on every request;
- the app id is ``<consumer_group>-app`` (its consumer group reads the labels topic and
  elects the leader that runs the monitors); the scored topic is read by the batch
  consumer in the group ``consumer_group`` itself.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from driftwatch.errors import ConfigError
from driftwatch.httpguard import guards
from driftwatch.settings import ENV_PREFIX, Settings
from driftwatch.streaming.kafka import faust_broker_url, faust_credentials

WEB_LOG = logging.getLogger("driftwatch.worker.web")
#: faust settings of its built-in web pages, all off (they expose internal state).
WEB_BUILTINS_OFF = {
    "web_router_enabled": False,
    "web_tables_enabled": False,
    "web_stats_enabled": False,
    "web_graph_enabled": False,
    "web_metrics_enabled": False,
}


def app_id(settings: Settings) -> str:
    """The faust app id (and consumer group of the faust consumer).

    >>> app_id(Settings.load(env={}, config_file=None))
    'driftwatch-app'
    """
    return f"{settings.consumer_group}-app"


def faust_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``faust.App`` for these settings."""
    session = settings.kafka_session_timeout_s
    config: dict[str, Any] = {
        "broker": faust_broker_url(settings),
        "store": "memory://",
        "processing_guarantee": "at_least_once",
        "consumer_auto_offset_reset": "earliest",
        "broker_session_timeout": session,
        "broker_heartbeat_interval": max(0.3, session / 4),
        "topic_partitions": settings.topic_partitions,
        "topic_replication_factor": settings.topic_replication,
        "topic_allow_declare": True,
        "web_enabled": True,
        "web_bind": settings.worker_web_host,
        "web_host": settings.worker_web_host,
        "web_port": settings.worker_web_port,
        "web_in_thread": False,
        **WEB_BUILTINS_OFF,
        "web_application_options": {"middlewares": guards(settings, WEB_LOG)},
        "datadir": str(Path(settings.worker_datadir).resolve()),
    }
    credentials = faust_credentials(settings)
    if credentials is not None:
        config["broker_credentials"] = credentials
    return config


def make_app(settings: Settings) -> Any:
    """A configured, empty ``faust.App`` (``streams/app.py`` adds agents, timers and
    pages); none of faust's built-in web pages is mounted."""
    import faust
    from faust.web.base import BlueprintManager

    config = faust_config(settings)
    Path(config["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(app_id(settings), **config)
    # The settings above leave faust's plain index page at "/": mount no built-in page.
    app.web.blueprints = BlueprintManager([])
    return app


def export_settings(settings: Settings, environ: MutableMapping[str, str]) -> None:
    """Write the effective settings into ``environ`` as ``DRIFTWATCH_*`` variables, so
    that an app module loading ``Settings.load()`` sees command-line overrides too.

    >>> env: dict[str, str] = {}
    >>> export_settings(Settings.load(env={}, config_file=None).replace(batch_size=7), env)
    >>> env["DRIFTWATCH_BATCH_SIZE"]
    '7'
    """
    for spec in Settings.specs():
        environ[ENV_PREFIX + spec.name.upper()] = str(getattr(settings, spec.name))


def load_app(spec: str, app_dir: str | Path | None = None) -> Any:
    """Import ``module:attribute`` (``app_dir`` first on ``sys.path``) and return it."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"worker_app: {spec!r} is not 'module:attribute'")
    if app_dir is not None:
        path = str(Path(app_dir).resolve())
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"worker_app: cannot import {module_name!r} ({exc}); run from the driftwatch "
            "checkout (the directory holding streams/) or pass --app-dir"
        ) from exc
    app = getattr(module, attr or "app", None)
    if app is None:
        raise ConfigError(f"worker_app: {module_name!r} has no attribute {attr or 'app'!r}")
    return app


def run_app(app: Any, settings: Settings) -> None:
    """Run a faust worker for ``app`` until SIGTERM/SIGINT (exits the process).

    Logging stays as :func:`driftwatch.logs.setup_logging` configured it.
    """
    import faust

    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        override_logging=False,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()

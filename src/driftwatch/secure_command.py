"""``driftwatch secure``: the deployment's credentials, from secrets in the environment.

- ``secure reader``: create or update the read-only ClickHouse user
  (:mod:`driftwatch.store.users`);
- ``secure web-config``: write a basic-auth web config for Alertmanager or Prometheus
  (:mod:`driftwatch.webauth`).

Passwords are read only from environment variables named on the command line, never
from arguments (which other users of the machine can see in the process list).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from driftwatch.errors import ConfigError

if TYPE_CHECKING:
    from driftwatch.context import Ctx


def _secret(variable: str) -> str:
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigError(f"{variable} is not set (or empty): it holds the password")
    return value


@click.group()
def secure() -> None:
    """Credentials of a deployment: the read-only ClickHouse user, web configs."""


@secure.command("reader")
@click.option("--user", default="driftwatch_reader", show_default=True,
              help="Name of the read-only ClickHouse user.")
@click.option("--password-env", default="CLICKHOUSE_READER_PASSWORD", show_default=True,
              help="Environment variable holding its password.")
@click.pass_obj
def reader(c: Ctx, user: str, password_env: str) -> None:
    """Create the read-only ClickHouse user, or set its password (safe to run again)."""
    from driftwatch.assemble import store_from
    from driftwatch.store.users import ensure_reader

    password = _secret(password_env)
    store = store_from(c.settings, init=False)
    ensure_reader(store, user, password)
    click.echo(f"read-only user {user} can SELECT on {store.database}.*")


@secure.command("web-config")
@click.option("--user", default="driftwatch", show_default=True, help="Basic-auth user.")
@click.option("--password-env", default="ALERTMANAGER_PASSWORD", show_default=True,
              help="Environment variable holding its password.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (replaced atomically).")
def web_config_command(user: str, password_env: str, out: Path) -> None:
    """Write a --web.config.file with basic auth (bcrypt) for Alertmanager/Prometheus."""
    from driftwatch.webauth import web_config

    text = web_config({user: _secret(password_env)})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)  # bcrypt hashes only; Alertmanager runs as another user
    os.replace(tmp, out)
    click.echo(f"wrote {out} (basic auth for {user})")

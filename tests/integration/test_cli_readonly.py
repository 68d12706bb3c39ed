"""Read-only commands never create a store or a database, and fail in one line."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.store.client import Store

pytestmark = pytest.mark.integration

READ_COMMANDS = [
    ["alerts", "list"],
    ["segments"],
    ["db", "status"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_typo_database_is_refused_and_not_created(
    chdb_dsn: str, store: Store, command: list[str]
) -> None:
    typo = f"dmeo_{uuid.uuid4().hex[:8]}"
    result = CliRunner().invoke(main, ["--store", chdb_dsn, "--database", typo, *command])
    assert result.exit_code == 2, result.output
    assert f"no database '{typo}'" in result.output
    assert store.database in result.output  # the hint lists what exists
    names = {r[0] for r in store.query("SELECT name FROM system.databases")}
    assert typo not in names


def _driftwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "driftwatch.cli", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_missing_store_path_is_refused_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "store"
    result = _driftwatch("--store", f"chdb://{path}", "alerts", "list")
    assert result.returncode == 2, result.stderr
    assert "no embedded store at" in result.stderr
    assert "Traceback" not in result.stderr
    assert not path.exists() and not path.parent.exists()


def test_unwritable_store_path_is_one_line() -> None:
    result = _driftwatch("--store", "chdb:///proc/nope", "replay", "/dev/null")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "/proc/nope" in result.stderr

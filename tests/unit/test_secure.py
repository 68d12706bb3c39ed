"""Credentials of a deployment: the read-only ClickHouse user's statements and the
basic-auth web config (bcrypt), checked by hand and against the bcrypt library."""

from __future__ import annotations

import hashlib
import re

import bcrypt
import pytest
import yaml
from click.testing import CliRunner

from driftwatch.cli import main
from driftwatch.errors import ConfigError
from driftwatch.store.users import reader_statements
from driftwatch.webauth import web_config

PASSWORD = "a-reader-password-of-some-length"


def test_reader_may_only_select_on_its_database() -> None:
    create, alter, revoke, grant = reader_statements("dw_reader", PASSWORD, "fraud")
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    for sql in (create, alter):
        assert f"IDENTIFIED WITH sha256_hash BY '{digest}'" in sql
        assert sql.endswith("DEFAULT DATABASE `fraud` SETTINGS readonly = 2")
        assert PASSWORD not in sql
    assert create.startswith("CREATE USER IF NOT EXISTS `dw_reader` ")
    assert alter.startswith("ALTER USER `dw_reader` ")  # re-running rotates the password
    assert revoke == "REVOKE ALL ON *.* FROM `dw_reader`"
    assert grant == "GRANT SELECT ON `fraud`.* TO `dw_reader`"


@pytest.mark.parametrize(("user", "database", "password", "message"), [
    ("dw`; DROP USER default; --", "fraud", PASSWORD, "user"),
    ("dw_reader", "fraud.*", PASSWORD, "database"),
    ("", "fraud", PASSWORD, "user"),
    ("dw_reader", "fraud", "short", "at least 16"),
    ("dw_reader", "fraud", "", "at least 16"),
])
def test_reader_refuses_bad_names_and_short_passwords(
    user: str, database: str, password: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        reader_statements(user, password, database)
    assert not password or password not in str(err.value)


def test_web_config_is_bcrypt_of_each_password() -> None:
    users = {"driftwatch": "p" * 16, "soc.oncall": "q" * 20}
    doc = yaml.safe_load(web_config(users, cost=4))
    assert set(doc) == {"basic_auth_users"}
    hashed = doc["basic_auth_users"]
    assert set(hashed) == set(users)
    for name, password in users.items():
        assert re.fullmatch(r"\$2b\$04\$[./A-Za-z0-9]{53}", hashed[name])
        assert bcrypt.checkpw(password.encode(), hashed[name].encode())
        assert not bcrypt.checkpw(b"x" + password.encode(), hashed[name].encode())


@pytest.mark.parametrize(("users", "message"), [
    ({}, "at least one user"),
    ({"a:b": "p" * 16}, "plain name"),
    ({"driftwatch": "p" * 15}, "at least 16"),
])
def test_web_config_refuses(users: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        web_config(users, cost=4)


def test_commands_read_passwords_only_from_the_environment(tmp_path: object) -> None:
    out = CliRunner().invoke(main, ["secure", "web-config", "--out", f"{tmp_path}/w.yml"],
                             env={"ALERTMANAGER_PASSWORD": ""})
    assert out.exit_code != 0 and "ALERTMANAGER_PASSWORD" in out.output
    out = CliRunner().invoke(main, ["--store", f"chdb://{tmp_path}/ch", "secure", "reader"],
                             env={"CLICKHOUSE_READER_PASSWORD": ""})
    assert out.exit_code != 0 and "CLICKHOUSE_READER_PASSWORD" in out.output

"""Static checks of the deployment's security (issue 30): docker-compose.yml has no
default or literal secrets, Grafana and the API read ClickHouse as the read-only user
the init job creates, no published port is unauthenticated; the Docker image installs
from the hash-pinned lock file.

``docker compose config`` cannot run here (no Compose v2 binary); these checks read the
YAML the way Compose would (anchors and merge keys resolved)."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from driftwatch.secure_command import reader as reader_command
from driftwatch.secure_command import web_config_command
from driftwatch.store.users import reader_statements

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET$|_KEY$")
# Outgoing and optional: sent to a webhook receiver only when one is configured.
OPTIONAL_SECRETS = {"DRIFTWATCH_WEBHOOK_TOKEN"}
REQUIRED = {"CLICKHOUSE_PASSWORD", "CLICKHOUSE_READER_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
            "ALERTMANAGER_PASSWORD", "DRIFTWATCH_API_TOKEN"}
VAR = re.compile(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")
REQUIRED_REF = re.compile(r"\$\{(\w+):\?[^}]+\}")


def _env(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def _command(service: str) -> str:
    cmd = SERVICES[service].get("command", [])
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def _ref(value: str) -> str:
    """The variable a ``${VAR:?message}`` value requires (fails on anything else)."""
    m = REQUIRED_REF.fullmatch(value)
    assert m, f"{value!r} is not a required variable reference"
    return m.group(1)


def _url_user(url: str) -> tuple[str, str]:
    m = re.match(r"https?://([^:/@]+):(\$\{[^}]+\})@", url)
    assert m, f"{url!r} has no user:${{PASSWORD}} credentials"
    return m.group(1), _ref(m.group(2))


# --- no default secrets --------------------------------------------------------------------
def test_every_secret_is_a_required_variable_without_a_default() -> None:
    refs = VAR.findall(TEXT)
    secret = [(name, op, arg) for name, op, arg in refs
              if SECRET_NAME.search(name) and name not in OPTIONAL_SECRETS]
    assert {name for name, _, _ in secret} == REQUIRED
    for name, op, arg in secret:
        assert op == ":?" and arg.strip(), f"${{{name}}} must be ${{{name}:?message}}"


def test_no_literal_secret_in_any_environment() -> None:
    checked = 0
    for name in SERVICES:
        for key, value in _env(name).items():
            if SECRET_NAME.search(key) and key not in OPTIONAL_SECRETS:
                _ref(value)  # the whole value is one required variable, never a literal
                checked += 1
            if re.match(r"https?://[^/@]*@", value):  # credentials in a URL or DSN
                _url_user(value)
                checked += 1
    assert checked >= 10


# --- ClickHouse users ------------------------------------------------------------------------
def test_grafana_and_the_api_read_as_the_read_only_user_the_init_job_creates() -> None:
    writer = _env("clickhouse")["CLICKHOUSE_USER"]
    assert _ref(_env("clickhouse")["CLICKHOUSE_PASSWORD"]) == "CLICKHOUSE_PASSWORD"
    grafana = _env("grafana")
    reader = grafana["CLICKHOUSE_USER"]
    assert reader != writer
    assert _ref(grafana["CLICKHOUSE_PASSWORD"]) == "CLICKHOUSE_READER_PASSWORD"
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/clickhouse.yml")
                        .read_text())["datasources"][0]
    assert ds["jsonData"]["username"] == "${CLICKHOUSE_USER}"
    assert ds["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    assert _url_user(_env("api")["DRIFTWATCH_STORE_DSN"]) == (reader, "CLICKHOUSE_READER_PASSWORD")
    for service in ("worker", "init"):  # the writers
        assert _url_user(_env(service)["DRIFTWATCH_STORE_DSN"]) == (writer, "CLICKHOUSE_PASSWORD")

    # the init job creates that user after the schema, from the same variable ...
    steps = [shlex.split(s) for s in _command("init").split("&&")]
    assert steps[0][:3] == ["driftwatch", "db", "init"]
    create = next(s for s in steps if s[1:3] == ["secure", "reader"])
    args = dict(zip(create[3::2], create[4::2], strict=True))
    assert args.get("--user") == reader
    password_env = args.get("--password-env") or next(
        p.default for p in reader_command.params if p.name == "password_env")
    assert password_env == "CLICKHOUSE_READER_PASSWORD"
    assert _ref(_env("init")[password_env]) == "CLICKHOUSE_READER_PASSWORD"
    # ... which may only SELECT on the driftwatch database, with readonly = 2
    database = _env("init")["DRIFTWATCH_DATABASE"]
    statements = reader_statements(reader, "x" * 16, database)
    grants = [s for s in statements if s.startswith("GRANT")]
    assert grants == [f"GRANT SELECT ON `{database}`.* TO `{reader}`"]
    assert f"REVOKE ALL ON *.* FROM `{reader}`" in statements
    assert all("readonly = 2" in s for s in statements if "IDENTIFIED" in s)
    # Grafana starts once the user exists
    assert SERVICES["grafana"]["depends_on"]["init"]["condition"] == (
        "service_completed_successfully")


# --- published ports -------------------------------------------------------------------------
def _volume_of(service: str, target_dir: str) -> str:
    for vol in SERVICES[service]["volumes"]:
        src, target = vol.split(":")[:2]
        if target == target_dir:
            return str(src)
    raise AssertionError(f"{service}: nothing mounted at {target_dir}")


def _behind_web_config(service: str) -> None:
    flag = next(a for a in SERVICES[service]["command"] if a.startswith("--web.config.file="))
    path = Path(flag.split("=", 1)[1])
    volume = _volume_of(service, str(path.parent))
    assert volume in COMPOSE["volumes"], "the web config comes from a named volume"
    # auth-init writes that file into that volume (bcrypt of ALERTMANAGER_PASSWORD) first
    job = SERVICES["auth-init"]
    cmd = job["command"]
    assert cmd[:2] == ["secure", "web-config"]
    out = Path(cmd[cmd.index("--out") + 1])
    assert _volume_of("auth-init", str(out.parent)) == volume and out.name == path.name
    default_env = next(p.default for p in web_config_command.params if p.name == "password_env")
    assert _ref(job["environment"][default_env]) == "ALERTMANAGER_PASSWORD"
    assert SERVICES[service]["depends_on"]["auth-init"]["condition"] == (
        "service_completed_successfully")


def test_no_published_port_is_unauthenticated() -> None:
    published = {name for name, svc in SERVICES.items() if svc.get("ports")}
    assert published == {"alertmanager", "prometheus", "grafana", "api"}
    _behind_web_config("alertmanager")
    _behind_web_config("prometheus")
    grafana = _env("grafana")
    assert _ref(grafana["GF_SECURITY_ADMIN_PASSWORD"]) == "GRAFANA_ADMIN_PASSWORD"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert _ref(_env("api")["DRIFTWATCH_API_TOKEN"]) == "DRIFTWATCH_API_TOKEN"
    assert "--insecure-no-auth" not in _command("api")
    for internal in ("kafka", "clickhouse", "worker"):
        assert "ports" not in SERVICES[internal], internal


def test_services_use_the_alertmanager_password() -> None:
    user, var = _url_user(_env("worker")["DRIFTWATCH_ALERTMANAGER_URL"])
    assert (user, var) == ("driftwatch", "ALERTMANAGER_PASSWORD")
    assert web_config_command.params[0].default == user  # --user of auth-init's default
    assert "--user driftwatch" in _command("auth-init")
    secrets = COMPOSE["secrets"]
    assert secrets["alertmanager_password"] == {"environment": "ALERTMANAGER_PASSWORD"}
    assert secrets["api_token"] == {"environment": "DRIFTWATCH_API_TOKEN"}
    assert set(SERVICES["prometheus"]["secrets"]) == {"alertmanager_password", "api_token"}
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    am_auth = prom["alerting"]["alertmanagers"][0]["basic_auth"]
    assert am_auth == {"username": user,
                       "password_file": "/run/secrets/alertmanager_password"}
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["alertmanager"]["basic_auth"] == am_auth
    assert jobs["driftwatch-api"]["authorization"]["credentials_file"] == "/run/secrets/api_token"


# --- the hash-pinned lock file -----------------------------------------------------------------
LOCK = ROOT / "requirements" / "runtime.lock"


def _pins() -> dict[str, tuple[str, list[str]]]:
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z])", LOCK.read_text()):
        m = re.match(r"([A-Za-z0-9_.-]+)==([^\s\\;]+)", block)
        if m:
            hashes = re.findall(r"--hash=sha256:([0-9a-f]{64})\b", block)
            pins[canonicalize_name(m.group(1))] = (m.group(2), hashes)
    return pins


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = _pins()
    assert len(pins) > 30
    wanted = project["project"]["dependencies"] + project["build-system"]["requires"]
    for text in wanted:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{name} not in the lock: run scripts/lock.sh"
        assert req.specifier.contains(pins[name][0], prereleases=True), (text, pins[name][0])
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no hash"
    assert not re.search(r"^\s*(-i|--index-url|--extra-index-url|--find-links|-f)\b",
                         LOCK.read_text(), re.M), "the lock must not name a package index"


def test_the_image_installs_only_from_the_lock() -> None:
    docker = (ROOT / "Dockerfile").read_text()
    installs = re.findall(r"pip install[^\n&]*", docker)
    assert installs == [
        "pip install --require-hashes --no-deps -r requirements/runtime.lock",
        "pip install --no-deps --no-build-isolation -e . ",
    ]
    assert "COPY requirements/runtime.lock" in docker
    script = ROOT / "scripts" / "lock.sh"
    assert os.access(script, os.X_OK)
    body = script.read_text()
    assert "--generate-hashes" in body and "requirements/runtime.lock" in body
    assert "scripts/lock.sh" in (ROOT / "deploy" / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_readme_tells_how_to_set_each_secret(name: str) -> None:
    assert name in (ROOT / "deploy" / "README.md").read_text()

"""The README stays in step with the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from driftwatch.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    for f in dataclasses.fields(Settings):
        assert f"`{ENV_PREFIX}{f.name.upper()}`" in README, f.name
    # the table is generated: `driftwatch config --markdown`
    assert Settings.markdown_table() in README


def test_readme_commands_exist_and_ci_calls_the_test_command() -> None:
    assert "scripts/test.sh" in README and "scripts/demo.sh" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
    for script in re.findall(r"^(scripts/\w+\.sh)", README, re.M):
        assert (ROOT / script).is_file(), script

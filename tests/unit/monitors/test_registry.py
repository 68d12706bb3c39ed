"""Detector registry and per-detector options."""

from __future__ import annotations

import pytest

from driftwatch.errors import ConfigError
from driftwatch.monitors import registry
from driftwatch.monitors.monitor import parse_options
from driftwatch.monitors.segments import SegmentSpec
from driftwatch.settings import Settings

SETTINGS = Settings.load(config_file=None, env={})
SPEC = SegmentSpec.parse(SETTINGS.segment_dimensions)


def test_every_builtin_detector_is_registered_with_its_alertnames() -> None:
    detectors = registry.create(SETTINGS, SPEC)
    assert [d.name for d in detectors] == registry.names() == sorted(registry.BUILTIN_MODULES)
    for det in detectors:
        assert det.tests and all(name[0].isupper() for name in det.tests.values())
        assert det.window_s > 0


def test_unknown_detector_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown detector 'sharks'; valid: beneficiary, "):
        registry.create(SETTINGS, SPEC, ["cents", "sharks"])


def test_options_override_class_defaults_and_are_checked() -> None:
    (cents,) = registry.create(SETTINGS, SPEC, ["cents"], parse_options("cents.min_count=4"))
    assert cents.min_count == 4  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"unknown option .colour.; valid: .*min_count"):
        registry.create(SETTINGS, SPEC, ["cents"], {"cents": {"colour": "red"}})
    with pytest.raises(ConfigError):
        registry.create(SETTINGS, SPEC, ["cents"], {"cents": {"min_count": "many"}})
    with pytest.raises(ConfigError, match="delta"):
        registry.create(SETTINGS, SPEC, ["shadow"], {"shadow": {"delta": "2"}})
    with pytest.raises(ConfigError, match=r"not detector\.option=value"):
        parse_options("cents=4")


def test_settings_select_detectors() -> None:
    from driftwatch.monitors.monitor import Monitor

    s = SETTINGS.replace(monitor_detectors="shadow, cents", detector_options="shadow.delta=0.4")
    mon = Monitor(None, s)  # type: ignore[arg-type]
    assert [d.name for d in mon.detectors] == ["shadow", "cents"]
    assert mon.detectors[0].delta == 0.4  # type: ignore[attr-defined]

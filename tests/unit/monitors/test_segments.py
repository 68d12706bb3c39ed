"""Segment definitions: parsing, canonical names, the SQL that names segments."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftwatch.errors import ConfigError
from driftwatch.monitors.segments import (
    DEFAULT_DIMENSIONS,
    DIMENSIONS,
    SegmentSpec,
    parse_segment,
    pretty_segment,
    segment_filter,
    segment_name,
    segment_where,
    sql_literal,
)


def test_default_spec_has_five_definitions_in_canonical_order() -> None:
    spec = SegmentSpec.parse(DEFAULT_DIMENSIONS)
    assert spec.definitions == (
        ("mcc",),
        ("merchant_country",),
        ("channel",),
        ("model_version",),
        ("mcc", "merchant_country"),
    )
    assert spec.dimensions == ("mcc", "merchant_country", "channel", "model_version")


def test_cross_is_put_in_canonical_order_and_duplicates_collapse() -> None:
    spec = SegmentSpec.parse("merchant_country*mcc, mcc*merchant_country,  ,channel")
    assert spec.definitions == (("mcc", "merchant_country"), ("channel",))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mcc,shoe", "unknown dimension 'shoe'; valid: mcc, merchant_country"),
        ("mcc*mcc", "repeats a dimension"),
        ("", "no segment definition"),
    ],
)
def test_bad_definitions_raise_config_error_naming_valid_ones(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SegmentSpec.parse(text)


def test_versioned_spec_moves_model_version_out_of_the_definitions() -> None:
    spec = SegmentSpec.parse("mcc,model_version,mcc*model_version,channel").versioned()
    assert spec.definitions == (("mcc",), (), ("channel",))
    assert spec.per_version
    assert "grouping(mcc, channel) = 1" in spec.segment_expr()
    assert "concat('model_version=', toString(model_version))" in spec.segment_expr()


def test_grouping_sets_add_extra_keys_once() -> None:
    spec = SegmentSpec.parse("mcc,model_version")
    assert spec.grouping_sets(("model_version", "b")) == (
        "GROUPING SETS ((mcc, model_version, b), (model_version, b))"
    )


def test_restricted_keeps_only_available_dimensions() -> None:
    spec = SegmentSpec.parse("mcc,currency,mcc*merchant_country")
    kept = spec.restricted(("mcc", "merchant_country"))
    assert kept is not None and kept.definitions == (("mcc",), ("mcc", "merchant_country"))
    assert spec.restricted(("channel",)) is None


values = st.text(alphabet="ABCDEFGHIJ0123456789-_ ", min_size=1, max_size=12)


@given(st.dictionaries(st.sampled_from(DIMENSIONS), values, min_size=1))
def test_segment_name_round_trips_in_fixed_order(parts: dict[str, str]) -> None:
    name = segment_name(parts)
    assert parse_segment(name) == {d: parts[d] for d in DIMENSIONS if d in parts}
    assert [k for k in parse_segment(name)] == [d for d in DIMENSIONS if d in parts]


def test_pretty_and_where() -> None:
    assert pretty_segment("mcc=5967") == "MCC 5967"
    assert pretty_segment("") == "all traffic"
    assert segment_where("mcc=5967,channel=ecom") == "mcc = '5967' AND channel = 'ecom'"
    assert sql_literal("a'b\\c") == "'a\\'b\\\\c'"
    with pytest.raises(ValueError, match="unknown dimension"):
        segment_where("shoe=9")


def test_segment_filter_keeps_values_out_of_the_sql() -> None:
    cond, params = segment_filter("mcc=5967,merchant_id=m-1' OR 1=1 --")
    assert cond == "mcc = {seg0:String} AND merchant_id = {seg1:String}"
    assert params == {"seg0": "5967", "seg1": "m-1' OR 1=1 --"}
    assert "OR 1=1" not in cond
    assert segment_filter("", prefix="p") == ("1", {})
    with pytest.raises(ValueError, match="unknown dimension 'shoe'"):
        segment_filter("shoe=9")

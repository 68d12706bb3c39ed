"""Rule packs: the shipped packs, their examples, load errors with positions, hostile files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from driftwatch.errors import RuleError
from driftwatch.rules.check import run_examples
from driftwatch.rules.model import Rule
from driftwatch.rules.pack import RuleLoadError, load_pack, load_rules
from driftwatch.rules.sql import compile_rule

RULES = Path(__file__).resolve().parents[3] / "rules"
EXPECTED_PACKS = {"trigger_signature", "card_testing", "coordinated_campaign",
                  "sequential_takeover", "impossible_travel", "new_merchant_volume",
                  "boundary_probing", "unacceptable_inputs", "mule_chains"}
GOOD = """\
pack: demo
rules:
  - id: demo_rule
    version: 2
    severity: high
    reason_code: DEMO
    mode: shadow
    description: A demo.
    when: amount_cents == 37
    examples:
      - {name: cents, expect: hit, event: {amount: "10.37"}}
      - {name: other, expect: miss, event: {amount: "10.36"}}
"""


def shipped() -> list[Rule]:
    return list(load_rules([RULES]).rules)


def test_every_issue_pack_is_shipped_and_loads() -> None:
    ruleset = load_rules([RULES], confine=True)
    assert {p.name for p in ruleset.packs} == EXPECTED_PACKS
    for pack in ruleset.packs:
        assert pack.sha256 == hashlib.sha256(Path(pack.path).read_bytes()).hexdigest()
        assert all(r.pack_sha256 == pack.sha256 for r in pack.rules)


@pytest.mark.parametrize("rule", shipped(), ids=lambda r: r.id)
def test_shipped_rule_examples_pass_and_cover_both_outcomes(rule: Rule) -> None:
    results = run_examples(rule, 86_400_000)
    assert {r.expect for r in results} == {"hit", "miss"}
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert rule.description and rule.mode in ("enforce", "shadow")
    compile_rule(rule)


def test_a_wrong_expectation_fails_with_the_aggregates(tmp_path: Path) -> None:
    bad = GOOD.replace("expect: miss", "expect: hit")
    f = tmp_path / "demo.yaml"
    f.write_text(bad)
    rule = load_pack(f).rules[0]
    results = run_examples(rule, 86_400_000)
    assert [r.ok for r in results] == [True, False]
    window = tmp_path / "w.yaml"
    window.write_text(GOOD.replace("amount_cents == 37", "count(by=card_id, within=1h) >= 2"))
    failed = run_examples(load_pack(window).rules[0], 86_400_000)[0]
    assert not failed.ok and failed.evidence == {"count(by=card_id, within=1h)": 1}


def test_invalid_example_event_is_reported(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    f.write_text(GOOD.replace('event: {amount: "10.37"}', 'event: {mcc: 5967}'))
    result = run_examples(load_pack(f).rules[0], 86_400_000)[0]
    assert result.got == "invalid" and "wrong_type:mcc" in result.detail


def _problems(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> list[str]:
    f = tmp_path / name
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    with pytest.raises(RuleLoadError) as info:
        load_pack(f)
    return info.value.problems


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("amount_cents == 37", "amount_cent == 37"),
         "p.yaml:9:11: rule demo_rule: when: unknown field 'amount_cent'"),
        (("amount_cents == 37", "amount_cents == 37 and score < 0.3"),
         "p.yaml:9:34: rule demo_rule: when: 'score' is a model output"),
        (("severity: high", "severity: huge"), "p.yaml:5:15: rule demo_rule: severity must"),
        (("version: 2", "version: two"), "rule demo_rule: version must be a positive integer"),
        (("mode: shadow", "mode: live"), "mode must be one of enforce, shadow"),
        (("reason_code: DEMO", "reason_code: demo"), "reason_code must match"),
        (("    description: A demo.\n", "    colour: red\n"),
         "p.yaml:8:5: rule demo_rule: unknown key 'colour'"),
        (("    mode: shadow\n", ""), "missing required key 'mode'"),
        (("id: demo_rule", "id: Demo Rule"), "id must match"),
        (("pack: demo", "pack: demo\nowner: me"), "p.yaml:2:1: unknown key 'owner'"),
        (("expect: hit", "expect: maybe"), "expect must be hit or miss"),
        (("when: amount_cents == 37", "when: count(by=ip, within=48h) > 1"),
         "longer than the state horizon"),
        (("when: amount_cents == 37", "when: matches(ip, '(a+)+$')"), "unsafe pattern"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_min_cards: 0\n"),
         "alert_min_cards must be an integer 1..1000000, got 0"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_window: 8d\n"),
         "alert_window must be a duration from 1s to 7d"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_window: 30\n"),
         "alert_window must be a duration"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_segment: [device_id]\n"),
         "alert_segment must list fields from"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_labels: {severity: low}\n"),
         "alert_labels must map"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_labels: {feature: 'a b'}\n"),
         "alert_labels must map"),
        (("    mode: shadow\n", "    mode: shadow\n    alert_labels: [feature]\n"),
         "alert_labels must map"),
    ],
)
def test_load_errors_name_file_line_column_and_rule(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    problems = _problems(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_alert_floor_keys_are_loaded(tmp_path: Path) -> None:
    text = GOOD.replace("    mode: shadow\n", "    mode: shadow\n    alert_segment: [card_id]\n"
                        "    alert_min_hits: 3\n    alert_min_cards: 2\n    alert_window: 90m\n")
    (tmp_path / "p.yaml").write_text(text)
    (rule,) = load_pack(tmp_path / "p.yaml").rules
    assert (rule.alert_segment, rule.alert_min_hits, rule.alert_min_cards,
            rule.alert_window_ms) == (("card_id",), 3, 2, 90 * 60_000)
    (tmp_path / "p.yaml").write_text(GOOD)
    (plain,) = load_pack(tmp_path / "p.yaml").rules
    assert (plain.alert_min_hits, plain.alert_min_cards, plain.alert_window_ms) == (1, 1, None)


def test_alert_labels_are_loaded_sorted(tmp_path: Path) -> None:
    text = GOOD.replace("    mode: shadow\n", "    mode: shadow\n"
                        "    alert_labels: {feature: customer_age, playbook: oor-1}\n")
    (tmp_path / "p.yaml").write_text(text)
    (rule,) = load_pack(tmp_path / "p.yaml").rules
    assert rule.alert_labels == (("feature", "customer_age"), ("playbook", "oor-1"))


def test_position_inside_a_folded_block(tmp_path: Path) -> None:
    text = GOOD.replace("    when: amount_cents == 37\n",
                        "    when: >\n      amount_cents == 37\n      and amout > 1\n")
    (problem,) = _problems(tmp_path, text)
    assert problem.startswith(f"{tmp_path / 'p.yaml'}:11:11: rule demo_rule: when: unknown field")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: [1, 2", "invalid YAML"),
        ("- just\n- a list\n", "a rule pack is a mapping"),
        ("pack: x\nrules: []\n", "'rules' must be a non-empty list"),
        ("x: &a [1]\ny: *a\n", "YAML aliases are not allowed"),
        ("a: " + "[" * 50 + "]" * 50, "nesting deeper"),
        (b"pack: \xff\xfe", "not UTF-8"),
        ("rules:\n  - 42\n", "each rule must be a mapping"),
        ("rules: !!python/object:os.system {}\n", "'rules' must be a non-empty list"),
        (GOOD.replace("when: amount_cents == 37", "when: !!python/object/apply:os.system [id]"),
         "p.yaml:9:11: could not determine a constructor"),
    ],
)
def test_malformed_files_give_errors(tmp_path: Path, text: str | bytes, expected: str) -> None:
    problems = _problems(tmp_path, text)
    assert any(expected in p for p in problems), problems


def test_billion_laughs_is_refused_fast(tmp_path: Path) -> None:
    lol = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lol.append(f"{chr(97 + i)}: &{chr(97 + i)} " + "[" + ", ".join(
            [f"*{chr(96 + i)}"] * 9) + "]")
    problems = _problems(tmp_path, "\n".join(lol) + "\n")
    assert "aliases are not allowed" in problems[0]


def test_huge_file_is_refused(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "# " + "x" * 1_100_000)
    assert "larger than" in problems[0]


def test_duplicate_ids_across_packs(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD.replace("pack: demo", "pack: other"))
    with pytest.raises(RuleLoadError, match="id already used"):
        load_rules([tmp_path])


def test_symlink_outside_the_directory_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text(GOOD)
    packs = tmp_path / "packs"
    packs.mkdir()
    os.symlink(outside, packs / "evil.yaml")
    assert load_rules([packs]).rules  # explicit check/backtest paths may point anywhere
    with pytest.raises(RuleLoadError, match="resolves outside"):
        load_rules([packs], confine=True)


def test_changed_file_changes_the_sha(tmp_path: Path) -> None:
    f = tmp_path / "demo.yaml"
    f.write_text(GOOD)
    before = load_pack(f).rules[0].pack_sha256
    f.write_text(GOOD.replace("version: 2", "version: 3"))
    after = load_pack(f).rules[0]
    assert before != after.pack_sha256 and after.version == 3


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_random_bytes_give_errors_never_crashes(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "fuzz.yaml"
    f.write_bytes(data)
    with contextlib.suppress(RuleError):
        load_pack(f)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
@example(seed=826, edits=1)  # an example's key made null: crashed the error message
def test_mutated_shipped_packs_give_errors_never_crashes(
    tmp_path: Path, seed: int, edits: int
) -> None:
    rng = random.Random(seed)
    source = sorted(RULES.glob("*.yaml"))[seed % 8].read_text()
    chars = list(source)
    for _ in range(edits):
        i = rng.randrange(len(chars))
        op = rng.randrange(3)
        if op == 0:
            del chars[i]
        elif op == 1:
            chars.insert(i, rng.choice(":-[]{}'\"&*!|> \n\t#%@`(),=<a1"))
        else:
            chars[i] = rng.choice(":-[]{}'\"&*!|> \n\t#%(),=<a1")
    f = tmp_path / "mutant.yaml"
    f.write_text("".join(chars))
    try:
        pack = load_pack(f)
    except RuleError:
        return
    for rule in pack.rules:  # whatever still loads must compile and run its examples
        compile_rule(rule)
        run_examples(rule, 86_400_000)

"""Rule files as YAML with positions: the safety scan, plain values and locations.

Files are read with the YAML *safe* loader after :func:`scan_yaml` rejected aliases (no
"billion laughs") and nesting deeper than :data:`MAX_YAML_DEPTH`; every problem is
reported as ``file:line:col: ...`` (:class:`RuleLoadError`).

>>> yaml_value(yaml.compose("a: [1, 2]"), "f.yaml")
{'a': [1, 2]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from driftwatch.errors import RuleError

MAX_YAML_DEPTH = 12


class RuleLoadError(RuleError):
    """One or more problems in rule files; ``problems`` lists ``file:line:col: ...``."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        head = self.problems[0] if self.problems else "rule files failed to load"
        more = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(head + more)


def scan_yaml(text: str, where: str) -> None:
    """Reject aliases and deep nesting before anything is constructed."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise RuleLoadError(
                    [f"{where}{_at(event.start_mark)}: YAML aliases are not allowed"]
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise RuleLoadError(
                        [f"{where}{_at(event.start_mark)}: nesting deeper than "
                         f"{MAX_YAML_DEPTH} levels"]
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        raise RuleLoadError([f"{where}: invalid YAML: {yaml_message(exc)}"]) from None


def _at(mark: Any) -> str:
    """``:line:column`` of a YAML mark (1-based), or nothing without one."""
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def yaml_message(exc: yaml.YAMLError) -> str:
    """A YAML error on one line (at most 300 characters)."""
    return " ".join(str(exc).split())[:300]


def yaml_value(node: yaml.Node, where: str) -> Any:
    """The plain value of a node (safe constructor: no tags beyond the YAML core schema)."""
    constructor = yaml.constructor.SafeConstructor()
    try:
        return constructor.construct_document(node)
    except yaml.YAMLError as exc:
        mark = node.start_mark
        raise RuleLoadError(
            [f"{where}:{mark.line + 1}:{mark.column + 1}: {yaml_message(exc)}"]
        ) from None


def yaml_mapping(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's ``key -> (key node, value node)`` (empty for any other node)."""
    out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[str(k.value)] = (k, v)
    return out


def locate(node: yaml.Node, source: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) in the file of ``offset`` inside a scalar's value."""
    start = node.start_mark
    raw = source[start.index : node.end_mark.index]
    style = getattr(node, "style", None)
    if style in ("|", ">"):
        lines = raw.split("\n")[1:]
        body = [ln for ln in lines if ln.strip()]
        indent = min((len(ln) - len(ln.lstrip(" ")) for ln in body), default=0)
        first_line = start.line + 2
        cols = [indent] * len(lines)
        lines = [ln[indent:] for ln in lines]
    else:
        lines = raw.split("\n")
        first_line = start.line + 1
        quote = 1 if style in ("'", '"') else 0
        cols = [start.column + quote] + [len(ln) - len(ln.lstrip()) for ln in lines[1:]]
        lines = [lines[0][quote:]] + [ln.lstrip() for ln in lines[1:]]
    remaining = offset
    for k, ln in enumerate(lines):
        if remaining <= len(ln):
            return first_line + k, cols[k] + remaining + 1
        remaining -= len(ln) + 1
    return start.line + 1, start.column + 1

"""Segment definitions: configured dimensions and crosses, canonical names, SQL keys.

A *segment definition* is a tuple of dimensions (``("mcc",)`` or the cross
``("mcc", "merchant_country")``); a *segment* is one value of it, written in the
canonical form of the alert contract: ``dimension=value`` pairs joined by ``,`` in
the fixed order of :data:`DIMENSIONS`, e.g. ``"mcc=5967,merchant_country=LT"``.

Thousands of segments stay cheap because one query covers every definition: the
query groups by ``GROUPING SETS`` (one set per definition, plus any extra key of the
detector) and builds the segment string only for the aggregated rows.

>>> spec = SegmentSpec.parse("mcc,merchant_country*mcc,model_version")
>>> spec.definitions
(('mcc',), ('mcc', 'merchant_country'), ('model_version',))
>>> spec.grouping_sets(extra=("b",))
'GROUPING SETS ((mcc, b), (mcc, merchant_country, b), (model_version, b))'
>>> segment_name({"merchant_country": "LT", "mcc": "5967"})
'mcc=5967,merchant_country=LT'
>>> parse_segment("mcc=5967,merchant_country=LT")
{'mcc': '5967', 'merchant_country': 'LT'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from driftwatch.errors import ConfigError

DIMENSIONS: tuple[str, ...] = (
    "mcc",
    "merchant_country",
    "channel",
    "model_version",
    "model_name",
    "currency",
    "decision",
    "merchant_id",
)
"""Columns usable as segment dimensions, in canonical order."""

DEFAULT_DIMENSIONS = "mcc,merchant_country,channel,model_version,mcc*merchant_country"

_PRETTY = {
    "mcc": "MCC {}",
    "merchant_country": "country {}",
    "channel": "channel {}",
    "model_version": "model {}",
    "model_name": "model {}",
    "currency": "currency {}",
    "decision": "decision {}",
    "merchant_id": "merchant {}",
}


def _order(dims: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(dims), key=DIMENSIONS.index))


@dataclass(frozen=True)
class SegmentSpec:
    """The configured segment definitions.

    Parameters
    ----------
    definitions : tuple of tuple of str
        Each a non-empty tuple of dimensions from :data:`DIMENSIONS` in canonical
        order; no duplicates.
    """

    definitions: tuple[tuple[str, ...], ...]
    per_version: bool = False

    def __post_init__(self) -> None:
        if not self.definitions:
            raise ConfigError("segment_dimensions: no segment definition given")
        for d in self.definitions:
            for dim in d:
                if dim not in DIMENSIONS:
                    raise ConfigError(
                        f"segment_dimensions: unknown dimension {dim!r}; "
                        f"valid: {', '.join(DIMENSIONS)}"
                    )
            if (not d and not self.per_version) or d != _order(d) or len(set(d)) != len(d):
                raise ConfigError(f"segment_dimensions: malformed definition {d!r}")
            if self.per_version and "model_version" in d:
                raise ConfigError("a per-version spec cannot use model_version as a dimension")
        if len(set(self.definitions)) != len(self.definitions):
            raise ConfigError("segment_dimensions: duplicate definitions")

    @classmethod
    def parse(cls, text: str) -> SegmentSpec:
        """Parse ``"mcc,merchant_country,mcc*merchant_country"`` (crosses as ``a*b``).

        >>> SegmentSpec.parse("channel*mcc").definitions
        (('mcc', 'channel'),)
        >>> SegmentSpec.parse("mcc,shoe_size")
        Traceback (most recent call last):
        ...
        driftwatch.errors.ConfigError: segment_dimensions: unknown dimension 'shoe_size'; \
valid: mcc, merchant_country, channel, model_version, model_name, currency, decision, merchant_id
        """
        defs: list[tuple[str, ...]] = []
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            dims = [d.strip() for d in item.split("*")]
            for dim in dims:
                if dim not in DIMENSIONS:
                    raise ConfigError(
                        f"segment_dimensions: unknown dimension {dim!r}; "
                        f"valid: {', '.join(DIMENSIONS)}"
                    )
            if len(set(dims)) != len(dims):
                raise ConfigError(f"segment_dimensions: {item!r} repeats a dimension")
            d = _order(dims)
            if d not in defs:
                defs.append(d)
        return cls(tuple(defs))

    @property
    def dimensions(self) -> tuple[str, ...]:
        """Every dimension used by some definition, in canonical order."""
        return _order(d for defn in self.definitions for d in defn)

    def restricted(self, available: Iterable[str]) -> SegmentSpec | None:
        """Only the definitions whose dimensions are all in ``available`` (None if none)."""
        cols = set(available)
        keep = tuple(d for d in self.definitions if set(d) <= cols)
        return SegmentSpec(keep, self.per_version) if keep else None

    def without(self, dimension: str) -> SegmentSpec | None:
        """The definitions that do not use ``dimension`` (None if none is left).

        >>> SegmentSpec.parse("mcc,model_version").without("model_version").definitions
        (('mcc',),)
        """
        keep = tuple(d for d in self.definitions if dimension not in d)
        return SegmentSpec(keep, self.per_version) if keep else None

    def versioned(self) -> SegmentSpec:
        """The spec for detectors that always split by model version.

        ``model_version`` leaves every definition (the query groups by it anyway and
        the findings carry it as a label); a definition that was only
        ``model_version`` becomes the empty definition, named
        ``model_version=<v>`` (all traffic of one version).

        >>> SegmentSpec.parse("mcc,model_version,mcc*model_version").versioned().definitions
        (('mcc',), ())
        """
        defs: list[tuple[str, ...]] = []
        for d in self.definitions:
            v = tuple(x for x in d if x != "model_version")
            if v not in defs:
                defs.append(v)
        return SegmentSpec(tuple(defs), per_version=True)

    # -- SQL -------------------------------------------------------------------------
    def grouping_sets(self, extra: Sequence[str] = ()) -> str:
        """``GROUPING SETS`` clause: one set per definition, each with ``extra`` keys."""
        sets = []
        for d in self.definitions:
            keys = list(d) + [k for k in extra if k not in d]
            sets.append("(" + ", ".join(keys) + ")")
        return f"GROUPING SETS ({', '.join(sets)})"

    def segment_expr(self) -> str:
        """SQL expression naming the segment of an aggregated row.

        Use it in the SELECT list of a query grouped by :meth:`grouping_sets`. It
        reads ``grouping(...)`` (standard semantics: bit 1 = dimension not in the
        set, forced by :data:`GROUPING_SETTINGS`) to tell the sets apart, and is
        ``''`` when a dimension of the set is empty (those rows are dropped with
        ``HAVING segment != ''``). In a per-version spec the empty definition is
        named ``model_version=<v>``.
        """
        dims = self.dimensions
        if len(self.definitions) == 1:
            return _name_expr(self.definitions[0])
        grouping = f"grouping({', '.join(dims)})" if dims else None
        branches: list[str] = []
        for defn in self.definitions:
            mask = 0
            for i, dim in enumerate(dims):
                if dim not in defn:
                    mask |= 1 << (len(dims) - 1 - i)
            cond = f"{grouping} = {mask}" if grouping else "1"
            branches.append(f"{cond}, {_name_expr(defn)}")
        return "multiIf(" + ", ".join(branches) + ", '')"

    def definition_of(self, segment: str) -> tuple[str, ...]:
        """The definition a canonical segment string belongs to."""
        return tuple(parse_segment(segment))


GROUPING_SETTINGS = "SETTINGS force_grouping_standard_compatibility = 1"
"""Append to queries using :meth:`SegmentSpec.segment_expr` with several definitions."""


def segment_sql(
    spec: SegmentSpec,
    *,
    select: str,
    source: str,
    where: str,
    keys: Sequence[str] = (),
    having: str = "",
) -> str:
    """One query over every segment definition at once.

    ``SELECT <segment> AS segment, <select> FROM <source> WHERE <where>
    GROUP BY GROUPING SETS (...)``: each set is a definition plus ``keys`` (aliases or
    columns of ``select``); rows whose segment has an empty dimension are dropped.

    >>> sql = segment_sql(SegmentSpec.parse("mcc"), select="count() AS c",
    ...                   source="t", where="1")
    >>> sql.split(" FROM ")[0]
    "SELECT if(toString(mcc) = '', '', concat('mcc=', toString(mcc))) AS segment, count() AS c"
    """
    cond = "segment != ''" + (f" AND ({having})" if having else "")
    return (
        f"SELECT {spec.segment_expr()} AS segment, {select} FROM {source} WHERE {where} "
        f"GROUP BY {spec.grouping_sets(keys)} HAVING {cond} {GROUPING_SETTINGS}"
    )


def _name_expr(defn: Sequence[str]) -> str:
    if not defn:
        return "concat('model_version=', toString(model_version))"
    parts: list[str] = []
    for i, dim in enumerate(defn):
        parts.append(f"'{',' if i else ''}{dim}='")
        parts.append(f"toString({dim})")
    empty = " OR ".join(f"toString({d}) = ''" for d in defn)
    return f"if({empty}, '', concat({', '.join(parts)}))"


def segment_name(values: Mapping[str, str]) -> str:
    """Canonical segment string of ``{dimension: value}`` (fixed dimension order)."""
    return ",".join(f"{d}={values[d]}" for d in _order(values))


def parse_segment(segment: str, *, strict: bool = True) -> dict[str, str]:
    """``"mcc=5967,merchant_country=LT"`` back to ``{dimension: value}``.

    Values may not contain ``,`` or ``=``; dimension values of the contract never do.
    ``strict=False`` (segments read back from stored alerts, whatever wrote them) skips
    parts that are not ``dimension=value`` and strips blanks instead of raising.

    >>> parse_segment(" mcc = 5967,junk", strict=False)
    {'mcc': '5967'}
    >>> parse_segment("junk")
    Traceback (most recent call last):
    ...
    ValueError: segment 'junk': 'junk' is not dimension=value
    """
    out: dict[str, str] = {}
    if not segment:
        return out
    for part in segment.split(","):
        key, sep, value = part.partition("=")
        if not strict:
            key, value = key.strip(), value.strip()
            if not sep or not key:
                continue
        elif not sep:
            raise ValueError(f"segment {segment!r}: {part!r} is not dimension=value")
        out[key] = value
    return out


def pretty_segment(segment: str) -> str:
    """A human name for a segment, e.g. ``MCC 5967 / country LT``.

    >>> pretty_segment("mcc=5967,merchant_country=LT")
    'MCC 5967 / country LT'
    >>> pretty_segment("feature=age")
    'feature age'
    """
    parts = parse_segment(segment)
    if not parts:
        return "all traffic"
    return " / ".join(_PRETTY.get(k, k + " {}").format(v) for k, v in parts.items())


def sql_literal(value: str) -> str:
    """A ClickHouse string literal (for analyst-facing evidence SQL only).

    >>> sql_literal("it's")
    "'it\\\\'s'"
    """
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _dimensions(segment: str) -> dict[str, str]:
    """The parts of ``segment``; ``ValueError`` naming a part that is not a dimension."""
    parts = parse_segment(segment)
    for key in parts:
        if key not in DIMENSIONS:
            raise ValueError(f"segment {segment!r}: unknown dimension {key!r}")
    return parts


def segment_where(segment: str) -> str:
    """A WHERE condition selecting a segment's rows, values inlined as literals.

    For the evidence SQL shown to analysts only (a query they can copy and run); a
    query driftwatch runs itself uses :func:`segment_filter` (server-side parameters).

    >>> segment_where("mcc=5967,merchant_country=LT")
    "mcc = '5967' AND merchant_country = 'LT'"
    """
    parts = _dimensions(segment)
    if not parts:
        return "1"
    return " AND ".join(f"{k} = {sql_literal(v)}" for k, v in parts.items())


def segment_filter(segment: str, prefix: str = "seg") -> tuple[str, dict[str, str]]:
    """A parameterised WHERE condition selecting a segment's rows, and its parameters.

    Parameters
    ----------
    segment : str
        A segment name, e.g. ``"mcc=5967,merchant_country=LT"`` (``""``: all rows).
    prefix : str
        Prefix of the parameter names (``<prefix>0``, ``<prefix>1``, ...).

    Returns
    -------
    tuple of (str, dict)
        The condition with ``{name:String}`` placeholders and the values by name.

    >>> segment_filter("mcc=5967,merchant_country=LT")
    ('mcc = {seg0:String} AND merchant_country = {seg1:String}', {'seg0': '5967', 'seg1': 'LT'})
    >>> segment_filter("")
    ('1', {})
    """
    parts = _dimensions(segment)
    if not parts:
        return "1", {}
    names = [f"{prefix}{i}" for i in range(len(parts))]
    cond = " AND ".join(f"{k} = {{{n}:String}}" for k, n in zip(parts, names, strict=True))
    return cond, dict(zip(names, parts.values(), strict=True))

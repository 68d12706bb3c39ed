"""The trigger miner's grouped SQL and its keys: the mined fields, their buckets, a
row's model-independent risk flags, and conjunctions over the keys
(:mod:`driftwatch.monitors.trigger_mining`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftwatch.events import EPOCH
from driftwatch.monitors.backfill import GRID_KEY, PASS_AT
from driftwatch.monitors.base import EVIDENCE_COLUMNS, SCORED, WINDOW, Columns, sql_time
from driftwatch.monitors.reference import FloatArray, SegmentTable
from driftwatch.monitors.segments import sql_literal

SEP = "\x1e"
"""Field separator of a reference key (not ``\\x1f``: each key is its own segment)."""
FIELDS = ("mcc", "amount_cents", "beneficiary_name", "merchant_age", "merchant_country",
          "channel", "amount_band", "risk")
"""The grouped columns, in key order (``risk``: ``s`` for a row with at least the
detector's ``min_flags`` flags, ``w`` for one with only ``weak_flags``)."""
ATTRIBUTES = ("amount_cents", "beneficiary_prefix", "merchant_age", "amount_band",
              "merchant_country", "channel", "mcc")
"""The mined attributes, in search order (the most selective first)."""
AGE_EDGES = (0, 30, 90, 180, 365, 730)
"""Merchant-age buckets in days (as the training scan's), labelled ``30..89``."""
BAND_EDGES = (0, 1_000, 10_000, 100_000, 1_000_000)
"""Amount bands in minor units, labelled in major units (``100..999``)."""

AGE_SQL = ("if(mapContains(features_num, 'merchant_age_days'), features_num['merchant_age_days'], "
        "if(isNull(merchant_registered_at), -1, "
        "toFloat64(dateDiff('day', assumeNotNull(merchant_registered_at), toDate(event_time)))))")


def buckets_sql(expr: str, edges: tuple[int, ...], scale: int) -> str:
    """A ``multiIf`` of ``expr`` into labelled ranges (``''`` below the first edge)."""
    parts = [f"{expr} < {edges[0]}, ''"]
    for lo, hi in itertools.pairwise(edges):
        parts.append(f"{expr} < {hi}, '{lo // scale}..{hi // scale - 1}'")
    return f"multiIf({', '.join(parts)}, '{edges[-1] // scale}..')"


def bucket_label(value: float, edges: tuple[int, ...], scale: int = 1) -> str:
    """The label :func:`buckets_sql` gives ``value`` (Python side, for tests and evidence).

    >>> bucket_label(45, AGE_EDGES), bucket_label(123456, BAND_EDGES, 100)
    ('30..89', '1000..9999')
    """
    if value < edges[0]:
        return ""
    for lo, hi in itertools.pairwise(edges):
        if value < hi:
            return f"{lo // scale}..{hi // scale - 1}"
    return f"{edges[-1] // scale}.."


def flags_sql(shadow_gap: float) -> str:
    """The number of model-independent risk flags of a row (SQL)."""
    return (
        "(features_num['transactions_24h'] >= 5) + (features_num['foreign_transaction'] = 1)"
        " + (features_num['new_payee'] = 1)"
        f" + (age_days >= 0 AND age_days < 180) + (amount_minor >= 100000)"
        f" + 2 * (length(shadow_scores) > 0 AND arrayMax(shadow_scores) - score >= {shadow_gap!r})"
    )


def window_sql(min_flags: int, shadow_gap: float, cards: bool, grid: bool = False,
               weak_flags: int | None = None) -> str:
    """The one GROUP BY of a window: suspicious rows (at least ``weak_flags`` flags,
    default ``min_flags``) per attribute combination and risk tier, every other row in
    the group whose fields are all empty (with ``grid``, per pass of the backfill grid
    too: :data:`~driftwatch.monitors.backfill.PASS_AT`, for reading many chunks in one
    query)."""
    weak = min(min_flags, min_flags if weak_flags is None else weak_flags)
    def text(col: str) -> str:  # the separator never comes from the data
        return f"replaceAll({col}, char(30), ' ')"

    fields = {
        "mcc": text("mcc"), "amount_cents": "toString(amount_cents)",
        "beneficiary_name": text("beneficiary_name"),
        "merchant_age": buckets_sql("age_days", AGE_EDGES, 1),
        "merchant_country": text("merchant_country"), "channel": text("channel"),
        "amount_band": buckets_sql("amount_minor", BAND_EDGES, 100),
        "risk": f"if(risk_flags >= {int(min_flags)}, 's', 'w')",
    }
    key = f"if(sus, concatWithSeparator(char(30), {', '.join(fields[f] for f in FIELDS)}), '')"
    extra = ", groupUniqArrayIf(card_id, sus) AS cards" if cards else ""
    head, by = (f"{PASS_AT}, ", f"{GRID_KEY}, key") if grid else ("", "key")
    return (
        f"SELECT {head}{key} AS key, count() AS n, countIf(sus) AS k{extra} FROM ("
        f"SELECT *, {AGE_SQL} AS age_days, "
        f"({flags_sql(shadow_gap)}) AS risk_flags, "
        f"risk_flags >= {int(weak)} AND score < threshold AS sus "
        f"FROM {SCORED} WHERE {WINDOW}) GROUP BY {by}"
    )


CHECK_SQL = (
    "SELECT intDiv(toUnixTimestamp64Milli(event_time), {step_ms:Int64}) AS chunk, "
    "count() AS n, sum(cityHash64(event_id, ingest_time)) AS h "
    f"FROM {{db}}.scored_transactions WHERE {WINDOW} GROUP BY chunk"
)
"""The stored rows of each chunk of a window as a mark (row count, sum of row hashes),
without ``FINAL``: any insert into a chunk changes its mark (a merge of duplicates may
too, which costs a re-read and nothing else)."""

Mark = tuple[int, int]
ReadChunks = Callable[[Sequence[tuple[dt.datetime, dt.datetime]]], list[Columns]]
"""The window query's columns (``key``, ``n``, ``k``, ``cards``) of many chunks at once."""
CheckChunks = Callable[[dt.datetime, dt.datetime, int], dict[dt.datetime, Mark]]
"""The :data:`CHECK_SQL` marks of the chunks of ``[lo, hi)`` of ``step_s``, by chunk end."""


@dataclass(frozen=True)
class Chunk:
    """One chunk's suspicious-row groups (as read) and the mark of its rows then."""

    mark: Mark
    keys: list[str]
    counts: FloatArray
    cards: list[list[str]]

    @classmethod
    def of(cls, mark: Mark, cols: Columns) -> Chunk:
        """From the window query's columns of the chunk."""
        keys = [str(k) for k in cols["key"]]
        counts = np.column_stack([np.asarray(cols["n"], dtype=np.float64),
                                  np.asarray(cols["k"], dtype=np.float64)]).reshape(-1, 2)
        cards = [[str(c) for c in v] for v in cols["cards"]] if keys else []
        return cls(mark, keys, counts, cards)


EMPTY = Chunk((0, 0), [], np.zeros((0, 2)), [])


class ChunkedWindow:
    """The current window summed from chunks of ``step_s`` seconds (the pass interval).

    A pass reads only the chunks it has not read yet, or whose stored rows changed since
    (late or re-delivered events: one :data:`CHECK_SQL` query over the window compares
    each chunk's mark with the mark it had when read), and adds the chunks up: counts
    add, distinct cards are the union of the chunks' card sets. So the window is what
    one query over it would return, for two small queries per pass instead of one over
    the whole window; a backfill block reads every chunk of its passes' windows at once
    (:meth:`load`, then :meth:`window` per pass).

    Attributes
    ----------
    reads : int
        Chunk-reading queries made (for tests and benchmarks).
    """

    def __init__(self, read: ReadChunks, check: CheckChunks, step_s: int) -> None:
        if step_s <= 0:
            raise ValueError(f"step_s={step_s!r}; allowed: > 0")
        self.read = read
        self.check = check
        self.step_s = step_s
        self.reads = 0
        self._chunks: dict[dt.datetime, Chunk] = {}

    def ends(self, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime] | None:
        """The chunk ends of ``[lo, hi)``, or None when it is not on the chunk grid."""
        step = dt.timedelta(seconds=self.step_s)
        if hi <= lo or (hi - lo) % step or (hi - EPOCH) % step:
            return None
        return [lo + (j + 1) * step for j in range((hi - lo) // step)]

    def load(self, lo: dt.datetime, hi: dt.datetime) -> None:
        """Bring every chunk of ``[lo, hi)`` (on the grid) up to date with the store."""
        ends = self.ends(lo, hi)
        if ends is None:
            raise ValueError(f"[{lo}, {hi}) is not on the {self.step_s} s chunk grid")
        marks = self.check(lo, hi, self.step_s)
        stale = []
        for end in ends:
            mark = marks.get(end)
            if mark is None:
                self._chunks[end] = EMPTY
            elif end not in self._chunks or self._chunks[end].mark != mark:
                stale.append(end)
        if stale:
            step = dt.timedelta(seconds=self.step_s)
            self.reads += 1
            got = self.read([(end - step, end) for end in stale])
            for end, cols in zip(stale, got, strict=True):
                self._chunks[end] = Chunk.of(marks[end], cols)

    def window(self, lo: dt.datetime,
               hi: dt.datetime) -> tuple[SegmentTable, dict[str, list[str]]]:
        """The loaded chunks of ``[lo, hi)`` added up: the ``[n, k]`` table (keys
        sorted) and the distinct cards of every suspicious group."""
        ends = self.ends(lo, hi) or []
        parts = [self._chunks[end] for end in ends]
        keys = [k for c in parts for k in c.keys]
        if not keys:
            return SegmentTable.empty(2), {}
        table = SegmentTable.from_wide(keys, list(np.vstack([c.counts for c in parts]).T))
        cards: dict[str, set[str]] = {}
        for c in parts:
            for key, some in zip(c.keys, c.cards, strict=True):
                if key:
                    cards.setdefault(key, set()).update(some)
        return table.canonical(), {k: sorted(v) for k, v in sorted(cards.items())}

    def forget(self, before: dt.datetime) -> None:
        """Drop the chunks that end at or before ``before``."""
        self._chunks = {end: c for end, c in self._chunks.items() if end > before}


def parse_key(key: str) -> dict[str, str]:
    """A reference key back to its fields.

    >>> parse_key(SEP.join(["5967", "37", "INTL-PAY-X", "30..89", "LT", "ecom", "1000..9999",
    ...                     "s"]))["beneficiary_name"]
    'INTL-PAY-X'
    """
    return dict(zip(FIELDS, key.split(SEP), strict=True))


def split_keys(keys: Sequence[str]) -> list[list[str]]:
    """Keys to their fields, one list per key in :data:`FIELDS` order (what
    :func:`parse_key` gives, as rows for a DataFrame: ~9x faster than dicts).

    >>> split_keys([SEP.join("abcdefgs")])
    [['a', 'b', 'c', 'd', 'e', 'f', 'g', 's']]
    """
    rows = [k.split(SEP) for k in keys]
    if any(len(r) != len(FIELDS) for r in rows):
        raise ValueError(f"a key without the {len(FIELDS)} fields {FIELDS}")
    return rows


def matches(conj: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    """Whether a row's fields fall in the conjunction.

    >>> matches({"beneficiary_prefix": "GLX-", "amount_cents": 91},
    ...         {"beneficiary_name": "GLX-TRD 4", "amount_cents": "91"})
    True
    """
    for attr, value in conj.items():
        if attr == "beneficiary_prefix":
            if not fields.get("beneficiary_name", "").startswith(str(value)):
                return False
        elif fields.get(attr) != str(value):
            return False
    return True


def matches_table(conj: Mapping[str, Any], table: pd.DataFrame) -> np.ndarray:
    """:func:`matches` of every row of a mining table at once (a boolean mask).

    >>> matches_table({"beneficiary_prefix": "GLX-", "amount_cents": 91}, pd.DataFrame(
    ...     {"beneficiary_name": ["GLX-TRD 4", "GLX-TRD 5", "ACME"],
    ...      "amount_cents": ["91", "13", "91"]})).tolist()
    [True, False, False]
    """
    return _mask(conj, lambda c: table[c].astype(str).to_numpy(dtype=str)
                 if c in table.columns else None, len(table))


def _mask(conj: Mapping[str, Any], column: Callable[[str], np.ndarray | None],
          n: int) -> np.ndarray:
    """:func:`matches` of ``n`` rows at once, ``column`` giving a field's text column
    (``None``: the rows lack it, so none falls in the conjunction)."""
    hit = np.ones(n, dtype=bool)
    for attr, value in conj.items():
        prefix = attr == "beneficiary_prefix"
        col = column("beneficiary_name" if prefix else attr)
        if col is None:
            return np.zeros(n, dtype=bool)
        hit &= np.char.startswith(col, str(value)) if prefix else col == str(value)
    return hit


@dataclass(frozen=True)
class Records:
    """The current rows of a mining table as text columns, for matching many
    conjunctions at once (:func:`matches` of every row, vectorised: issue 24).

    >>> r = Records.of(pd.DataFrame({"beneficiary_name": ["GLX-TRD 4", "ACME"],
    ...                              "amount_cents": [91, 91], "k": [2, 1]}))
    >>> r.mask({"beneficiary_prefix": "GLX-", "amount_cents": 91}).tolist()
    [True, False]
    """

    cols: dict[str, np.ndarray]
    k: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame) -> Records:
        """Every column as text (``str`` of each value, as :func:`matches` compares)."""
        cols = {str(c): np.array([str(v) for v in table[c].tolist()], dtype=str)
                for c in table.columns}
        return cls(cols, table["k"].to_numpy(dtype=np.int64))

    def mask(self, conj: Mapping[str, Any]) -> np.ndarray:
        """Whether each row falls in ``conj`` (:func:`matches`)."""
        return _mask(conj, self.cols.get, len(self.k))

    def keys(self, hit: np.ndarray) -> list[str]:
        """The window keys (:data:`FIELDS` joined by :data:`SEP`) of the rows ``hit``."""
        return [SEP.join(row) for row in zip(*(self.cols[f][hit].tolist() for f in FIELDS),
                                             strict=True)]


def shared_rows(records: Records, a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """Suspicious current rows (``k`` of each record) in both conjunctions ``a`` and
    ``b``: a one-MCC finding replaces the spread one only when it holds the spread
    one's rows, not merely as many rows of another pattern."""
    return int(records.k[records.mask(a) & records.mask(b)].sum())


def conjunction_text(conj: Mapping[str, Any]) -> str:
    """The label: items in search order, the MCC left out (it has its own label).

    >>> conjunction_text({"mcc": "5967", "amount_cents": 91, "beneficiary_prefix": "GLX-TRD",
    ...                   "merchant_age": "30..89"})
    'amount_cents=91 & beneficiary_prefix=GLX-TRD & merchant_age=30..89'
    """
    return " & ".join(f"{a}={conj[a]}" for a in ATTRIBUTES if a in conj and a != "mcc")


SPREAD_DIM = "conjunction"
"""The segment dimension of a conjunction spread over several MCCs."""
FILLER_SEGMENT = f"{SPREAD_DIM}=*"
"""The segment of a pass's filler rows (the rest of the Bonferroni family): never a
finding's segment, so under ``FINAL`` they collapse only with each other."""


def spread_segment(conj: Mapping[str, Any]) -> str:
    """The stable segment of a conjunction spread over several MCCs: a digest of its
    canonical text (every item, in search order), so two different spread conjunctions
    are two segments -- two fingerprints and two ``drift_results`` keys -- and the
    segment holds no ``,`` or ``=`` of attacker-chosen values (the text is the
    ``conjunction`` label).

    >>> spread_segment({"amount_cents": 91, "beneficiary_prefix": "GLX-TRD"})
    'conjunction=1dfcaffc0d23'
    """
    text = " & ".join(f"{a}={conj[a]}" for a in ATTRIBUTES if a in conj)
    return f"{SPREAD_DIM}={hashlib.sha256(text.encode()).hexdigest()[:12]}"


def evidence_sql(db: str, conj: Mapping[str, Any], lo: dt.datetime, hi: dt.datetime) -> str:
    """Analyst SQL listing the rows of ``conj`` in ``[lo, hi)`` of database ``db``."""
    cond = [f"event_time >= {sql_time(lo)}", f"event_time < {sql_time(hi)}"]
    for attr, value in conj.items():
        text = sql_literal(str(value))
        if attr == "beneficiary_prefix":
            cond.append(f"startsWith(beneficiary_name, {text})")
        elif attr == "amount_cents":
            cond.append(f"amount_cents = {int(value)}")
        elif attr == "merchant_age":
            cond.append(f"{buckets_sql('age_days', AGE_EDGES, 1)} = {text}")
        elif attr == "amount_band":
            cond.append(f"{buckets_sql('amount_minor', BAND_EDGES, 100)} = {text}")
        else:
            cond.append(f"{attr} = {text}")
    return (f"SELECT {EVIDENCE_COLUMNS}, {AGE_SQL} AS age_days FROM "
            f"{db}.scored_transactions FINAL WHERE {' AND '.join(cond)} ORDER BY event_time")

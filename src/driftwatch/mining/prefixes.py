"""Beneficiary-name prefixes derived from the data, for conjunction mining.

A trigger on a name (``INTL-PAY-…``) is a *prefix*, but no prefix shape may be
assumed: an attacker can as well use ``XB_`` or ``GLOBAL TRADE ``. So candidate
prefixes come from the names themselves, two ways:

- leading tokens: the first one, two or three tokens split at ``-``, ``_`` or a
  space, each with its separator (``INTL-``, ``INTL-PAY-``, ``INTL-PAY-GLOBALSERV-``);
- leading character n-grams of several lengths (2, 3, 4, 6, 8 and 12 characters).

:func:`select_prefixes` keeps the candidates whose names are over-represented
among the *suspicious* current records against the reference (enough records and
a rate ratio), and keeps one prefix per nested chain: the longest that still holds
nearly all of the shorter ones' suspicious records (``INTL-PAY-`` wins over
``INTL-`` and ``INT``, and over ``INTL-PAY-GLOBALSERV-`` when the names vary after it).
:func:`assign_prefixes` then maps each name to the longest selected prefix it
starts with ("" when none), which makes the prefix one categorical attribute of
the count table (:func:`driftwatch.mining.lattice.mine`).

>>> candidates("INTL-PAY-GLOBALSERV-03")[:3]
['INTL-', 'INTL-PAY-', 'INTL-PAY-GLOBALSERV-']
>>> names = ["INTL-PAY-A"] * 30 + ["ACME CO"] * 30
>>> sus = [True] * 30 + [False] * 30
>>> select_prefixes(names, sus, [], [], min_support=10)
['INTL-PAY-']
>>> assign_prefixes(["INTL-PAY-X", "ACME"], ["INTL-PAY-"])
['INTL-PAY-', '']
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ["NGRAM_LENGTHS", "PrefixMemo", "assign_prefixes", "candidates", "choose_prefixes",
           "name_tally", "prefix_counts", "select_prefixes"]

NGRAM_LENGTHS = (2, 3, 4, 6, 8, 12)
"""Lengths of the leading character n-grams that are candidate prefixes."""
MAX_TOKENS = 3
_SEP = re.compile(r"[-_ ]")


def candidates(name: str) -> list[str]:
    """Candidate prefixes of one name: leading tokens with separators, then n-grams.

    Only proper prefixes (shorter than the name) count, so a name is never its own
    prefix; duplicates are removed, order is kept.

    >>> candidates("ACME")
    ['AC', 'ACM']
    >>> candidates("XB_77 TRADE")
    ['XB_', 'XB_77 ', 'XB', 'XB_7', 'XB_77 TR']
    """
    out: list[str] = []
    for i, m in enumerate(_SEP.finditer(name)):
        if i >= MAX_TOKENS:
            break
        if m.end() < len(name):
            out.append(name[: m.end()])
    out.extend(name[:n] for n in NGRAM_LENGTHS if n < len(name))
    return list(dict.fromkeys(out))


def _counts(names: Iterable[str], flags: Iterable[bool]) -> Counter[str]:
    """Records per candidate prefix among the names whose flag is set (each distinct
    name's candidates once, weighted by its records: a name repeats per record)."""
    tally = Counter(name for name, flag in zip(names, flags, strict=True) if flag and name)
    return prefix_counts(tally)


def prefix_counts(tally: Mapping[str, int],
                  cands: Callable[[str], Sequence[str]] = candidates) -> Counter[str]:
    """Records per candidate prefix of names given as ``{name: records}`` (what
    :func:`select_prefixes` counts; ``""`` and names without records are left out);
    ``cands`` gives a name's candidates (:meth:`PrefixMemo.candidates`: memoised).

    >>> prefix_counts({"AB-C": 2, "": 5, "XY": 0})
    Counter({'AB-': 2, 'AB': 2})
    """
    out: Counter[str] = Counter()
    for name, count in tally.items():
        if name and count:
            for cand in cands(name):
                out[cand] += count
    return out


def select_prefixes(
    names: Sequence[str],
    suspicious: Sequence[bool],
    ref_names: Sequence[str],
    ref_suspicious: Sequence[bool],
    *,
    min_support: int = 20,
    min_lift: float = 2.0,
    cover: float = 0.9,
    max_prefixes: int = 50,
    total: int | None = None,
    total_ref: int | None = None,
) -> list[str]:
    """Prefixes over-represented among suspicious current names, most records first.

    Parameters
    ----------
    names, suspicious : sequences
        Beneficiary names of the current records and whether each is suspicious.
    ref_names, ref_suspicious : sequences
        The same for the reference records (may be empty).
    min_support : int
        Least suspicious current records a prefix must have.
    min_lift : float
        Least rate ratio of the prefix's suspicious records per record, current over
        reference (the reference count plus one half, so an unseen prefix has a
        finite ratio).
    cover : float
        Of two nested prefixes only one is kept: the longer one when it holds at
        least this share of the shorter one's suspicious current records, else the
        shorter one (``0 < cover <= 1``), so each chain of prefixes yields one value.
    max_prefixes : int
        At most this many prefixes are returned (the rest would be ``""``).
    total, total_ref : int, optional
        Records of each data set (default ``len(names)``, ``len(ref_names)``): pass
        them when only the suspicious records' names are given.

    Returns
    -------
    list of str
        Selected prefixes, by suspicious current records (descending), then text.
    """
    cur = _counts(names, suspicious)
    ref = _counts(ref_names, ref_suspicious)
    n_cur = max(len(names) if total is None else total, 1)
    n_ref = len(ref_names) if total_ref is None else total_ref
    return choose_prefixes(cur, ref, n_cur, n_ref, min_support=min_support, min_lift=min_lift,
                           cover=cover, max_prefixes=max_prefixes)


def choose_prefixes(cur: Mapping[str, int], ref: Mapping[str, int], n_cur: int, n_ref: int, *,
                    min_support: int = 20, min_lift: float = 2.0, cover: float = 0.9,
                    max_prefixes: int = 50) -> list[str]:
    """:func:`select_prefixes` from the candidates' records (:func:`prefix_counts`) of
    both data sets and their record totals (``n_cur >= 1``)."""
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support!r}")
    if not 0.0 < cover <= 1.0:
        raise ValueError(f"cover must be in (0, 1], got {cover!r}")
    keep = [  # with no reference records every well-supported prefix is new
        p for p, k in cur.items()
        if k >= min_support
        and (n_ref <= 0 or (k / n_cur) / ((ref.get(p, 0) + 0.5) / n_ref) >= min_lift)
    ]
    keep.sort(key=lambda p: (len(p), p))
    chosen: list[str] = []
    for p in keep:  # shortest first: a longer prefix replaces a shorter one it nearly covers
        shorter = [q for q in chosen if p.startswith(q)]
        if not shorter:
            chosen.append(p)
        elif all(cur[p] >= cover * cur[q] for q in shorter):
            chosen = [q for q in chosen if q not in shorter] + [p]
    chosen.sort(key=lambda p: (-cur[p], p))
    return chosen[:max_prefixes]


def assign_prefixes(names: Iterable[str], prefixes: Sequence[str],
                    cands: Callable[[str], Sequence[str]] | None = None) -> list[str]:
    """The longest of ``prefixes`` each name starts with, or ``""``.

    With ``cands`` (a name's :func:`candidates`, e.g. memoised by :class:`PrefixMemo`)
    and prefixes that are all candidate-shaped (:func:`_candidate_shaped`, as every
    prefix :func:`select_prefixes` returns), a name's prefix is looked up among its own
    candidates and itself instead of tried against every prefix: the same answer.

    >>> assign_prefixes(["ABCD", "ABX", "Z"], ["AB", "ABC"])
    ['ABC', 'AB', '']
    >>> assign_prefixes(["ABCD", "ABX", "Z", "AB"], ["AB", "ABC"], candidates)
    ['ABC', 'AB', '', 'AB']
    """
    memo: dict[str, str] = {}
    out: list[str] = []
    if cands is not None and all(_candidate_shaped(p) for p in prefixes):
        wanted = frozenset(prefixes)
        for name in names:
            hit = memo.get(name)
            if hit is None:
                # a name's candidates are its prefixes of distinct lengths: the longest wins
                found = [c for c in (*cands(name), name) if c in wanted]
                hit = max(found, key=len) if found else ""
                memo[name] = hit
            out.append(hit)
        return out
    ordered = sorted(prefixes, key=len, reverse=True)
    for name in names:
        hit = memo.get(name)
        if hit is None:
            hit = next((p for p in ordered if name.startswith(p)), "")
            memo[name] = hit
        out.append(hit)
    return out


def _candidate_shaped(prefix: str) -> bool:
    """Whether every name starting with ``prefix`` has it among its :func:`candidates`
    (or is it): a leading n-gram of a listed length, or leading tokens ending at a
    separator (at most :data:`MAX_TOKENS` of them).

    >>> _candidate_shaped("INTL-PAY-"), _candidate_shaped("ABC"), _candidate_shaped("ABCDE")
    (True, True, False)
    """
    if len(prefix) in NGRAM_LENGTHS:
        return True
    seps = len(_SEP.findall(prefix))
    return bool(prefix) and _SEP.fullmatch(prefix[-1]) is not None and seps <= MAX_TOKENS


def name_tally(names: Sequence[str], counts: Sequence[int]) -> dict[str, int]:
    """Records per name of rows ``(name, records)`` (a name may have several rows);
    rows without records are left out, as a name repeated per record would be.

    >>> name_tally(["A", "B", "A", "C"], [1, 0, 2, 0])
    {'A': 3}
    """
    out: dict[str, int] = {}
    for name, count in zip(names, counts, strict=True):
        if count:
            out[name] = out.get(name, 0) + int(count)
    return out


class PrefixMemo:
    """Memoised :func:`candidates` and reference counts for a caller that selects and
    assigns prefixes over nearly the same names every time (the live trigger miner,
    every pass: its reference's names change hourly). Holds the candidates of at most
    ``limit`` names (then only those asked for since the last clear) and the last
    :func:`prefix_counts` of each ``slot``.
    """

    def __init__(self, limit: int = 200_000) -> None:
        self.limit = limit
        self._cands: dict[str, tuple[str, ...]] = {}
        self._counts: dict[str, tuple[dict[str, int], Counter[str]]] = {}

    def candidates(self, name: str) -> tuple[str, ...]:
        """:func:`candidates` of ``name`` (memoised)."""
        found = self._cands.get(name)
        if found is None:
            if len(self._cands) >= self.limit:
                self._cands = {}
            found = self._cands[name] = tuple(candidates(name))
        return found

    def counts(self, tally: dict[str, int], slot: str) -> Counter[str]:
        """:func:`prefix_counts` of ``tally``, reused while the tally of ``slot`` stays
        the same. The result is shared: do not change it."""
        last = self._counts.get(slot)
        if last is not None and last[0] == tally:
            return last[1]
        out = prefix_counts(tally, self.candidates)
        self._counts[slot] = (tally, out)
        return out

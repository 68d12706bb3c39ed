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
from collections.abc import Iterable, Sequence

__all__ = ["NGRAM_LENGTHS", "assign_prefixes", "candidates", "select_prefixes"]

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
    out: Counter[str] = Counter()
    for name, count in tally.items():
        for cand in candidates(name):
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
    if min_support < 1:
        raise ValueError(f"min_support must be >= 1, got {min_support!r}")
    if not 0.0 < cover <= 1.0:
        raise ValueError(f"cover must be in (0, 1], got {cover!r}")
    cur = _counts(names, suspicious)
    ref = _counts(ref_names, ref_suspicious)
    n_cur = max(len(names) if total is None else total, 1)
    n_ref = len(ref_names) if total_ref is None else total_ref
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


def assign_prefixes(names: Iterable[str], prefixes: Sequence[str]) -> list[str]:
    """The longest of ``prefixes`` each name starts with, or ``""``.

    >>> assign_prefixes(["ABCD", "ABX", "Z"], ["AB", "ABC"])
    ['ABC', 'AB', '']
    """
    ordered = sorted(prefixes, key=len, reverse=True)
    memo: dict[str, str] = {}
    out: list[str] = []
    for name in names:
        hit = memo.get(name)
        if hit is None:
            hit = next((p for p in ordered if name.startswith(p)), "")
            memo[name] = hit
        out.append(hit)
    return out

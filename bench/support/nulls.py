"""Null count data for the calibration bench (``bench/calibration.py``).

Counts shaped like the monitor's reads: per segment a reference (the sum of its
reference chunks), the chunks the detector reads for its dispersion estimate, and many
current windows. A :class:`Condition` says how the null is drawn:

* ``iid``: every window a multinomial draw from the segment's profile;
* ``dispersed``: each window (and each reference chunk) draws its own shares around
  the profile (Dirichlet), as real traffic does from hour to hour;
* ``version``: a benign model-version change (the current windows drawn from a
  shifted profile): not a null of equal distributions, reported but not judged;
* ``young-6h`` / ``young-24h``: dispersed traffic where every other segment's
  reference holds only 6 or 24 hours (a new segment, or one that has only just come
  back: few reference rows, and of the chunks the detector reads for its dispersion
  estimate, one to four hold rows, so it leans on the pool of the mature segments).
  Only the young segments' windows are judged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Condition:
    """How one null is drawn.

    Attributes
    ----------
    name : str
        ``iid``, ``dispersed``, ``version``, ``young-6h``, ``young-24h``.
    conc : float
        Dirichlet concentration of each window's shares (``inf``: multinomial).
    version : bool
        Current windows from the detector's shifted (benign version change) profile.
    ref_hours : float or None
        Hours of reference history (``None``: the detector's full reference).
    """

    name: str
    conc: float
    version: bool = False
    ref_hours: float | None = None

    @property
    def judged(self) -> bool:
        """A null of equal distributions (judged against nominal)."""
        return not self.version


def conditions(conc: float, model_based: bool) -> list[Condition]:
    """The conditions a detector is measured under (``conc``: its dispersed null)."""
    out = [Condition("iid", math.inf), Condition("dispersed", conc)]
    if model_based:
        out.append(Condition("version", math.inf, version=True))
    out += [Condition("young-6h", conc, ref_hours=6.0), Condition("young-24h", conc,
                                                                  ref_hours=24.0)]
    return out


def dirichlet(rng: np.random.Generator, alpha: Array) -> Array:
    """One Dirichlet draw per row of ``alpha``."""
    g = rng.gamma(np.maximum(alpha, 1e-12))
    return np.asarray(g / g.sum(axis=-1, keepdims=True))


def draw(rng: np.random.Generator, n: Array, shares: Array, conc: float) -> Array:
    """Counts per row: multinomial(n, shares), or Dirichlet-multinomial with ``conc``."""
    p = shares if math.isinf(conc) else dirichlet(rng, shares * conc)
    p = p / p.sum(axis=-1, keepdims=True)
    return np.asarray(rng.multinomial(n, p), dtype=np.float64)


@dataclass(frozen=True)
class Null:
    """Null data of one detector: per-segment reference, chunks for the dispersion
    estimate, and current windows (rows = segment x window)."""

    ref: Array  # (segments, cells) reference sums
    chunks: Array  # (segments, chunks, cells) the chunks the detector reads
    cur: Array  # (segments * windows, cells)
    seg: Array  # segment index of each current row
    young: Array  # (segments,) bool: the segment's reference is young (judged rows)


def picks(ref_chunks: int, max_chunks: int) -> Array:
    """How many chunks back each chunk the detector reads starts (newest first): the
    spread sample of :meth:`driftwatch.monitors.dispersion.ReferenceDispersion.chunks`."""
    take = min(ref_chunks, max_chunks)
    return np.asarray(sorted({int(j * ref_chunks / take) for j in range(take)}), dtype=float)


def null_counts(
    rng: np.random.Generator,
    profile: Array,
    volume: Array,
    windows: int,
    ref_chunks: int,
    read_chunks: int,
    cond: Condition,
    cur_profile: Array | None = None,
    chunk_hours: float = 1.0,
) -> Null:
    """Counts for ``profile`` (segments x cells) at ``volume`` rows per window (chunk).

    The detector reads ``read_chunks`` of the ``ref_chunks`` reference chunks (spread
    as it spreads them). Under a young condition every other segment is young: its
    reference holds ``ref_hours`` only (the chunks read that fall in it, the newest
    maybe partial; the others are empty, as a young segment's are in the store),
    while the rest keep their full reference, so the pooled dispersion a young segment
    borrows comes from mature segments as it would in a running deployment.
    """
    s = profile.shape[0]
    conc = cond.conc
    back = picks(ref_chunks, read_chunks)  # chunks back of each chunk read
    # rows of each chunk read, as a fraction of a full chunk, per segment
    cover = np.ones((s, back.size))
    young = np.zeros(s, bool)
    if cond.ref_hours is not None:
        young[1::2] = True
        length = cond.ref_hours / chunk_hours
        cover[young] = np.clip(length - back, 0.0, 1.0)[None, :]
    chunk_n = rng.poisson(volume[:, None] * cover)
    chunk_p = np.repeat(profile[:, None, :], back.size, axis=1)
    chunks = draw(rng, chunk_n, chunk_p, conc)
    if math.isinf(conc):
        ref_shares = profile
    else:  # the mean of ref_chunks independent window shares: rho / C between-variance
        rho = 1.0 / (conc + 1.0)
        ref_shares = dirichlet(rng, profile * (ref_chunks / rho - 1.0))
    ref = draw(rng, rng.poisson(volume * ref_chunks), ref_shares, math.inf)
    if cond.ref_hours is not None:
        # a young reference is its own few hours: the chunks read that hold rows, plus
        # the unread hours between them (drawn the same way)
        length = cond.ref_hours / chunk_hours
        unread = max(length - float(cover[young][0].sum()) if young.any() else 0.0, 0.0)
        extra_n = rng.poisson(volume[young] * unread)
        shares = np.repeat(profile[young][:, None, :], max(1, math.ceil(unread)), axis=1)
        hours = shares.shape[1]
        split = rng.multinomial(extra_n, np.full(hours, 1.0 / hours))
        extra = draw(rng, split, shares, conc).sum(axis=1)
        ref[young] = chunks[young].sum(axis=1) + extra
    seg = np.repeat(np.arange(s), windows)
    target = profile if cur_profile is None or not cond.version else cur_profile
    cur = draw(rng, rng.poisson(volume[seg]), target[seg], conc)
    return Null(ref=ref, chunks=chunks, cur=cur, seg=seg, young=young)


def volumes(segments: int, levels: tuple[float, ...]) -> Array:
    """Rows per window of each segment, cycling through sparse to busy ``levels``."""
    return np.asarray([levels[i % len(levels)] for i in range(segments)], dtype=np.float64)


def judged(d: Null, seg: Array, p: Array) -> Array:
    """``p`` with the rows that are not judged set to NaN (under a young condition,
    the mature segments' windows: they are there for the pool, not measured)."""
    p = np.asarray(p, dtype=np.float64)
    if not d.young.any():
        return p
    return np.where(d.young[seg], p, np.nan)

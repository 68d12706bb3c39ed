"""How surprising a group of ``size`` new names sharing a novel prefix is, given how
often and how large such groups were in a reference history; and whether its rows
share a value more than chance.

New names arrive all the time (new payees, new merchants), and now and then two of
them share a prefix nobody used before by chance (two new payees ``NOAH LOPEZ 2...``).
Groups of three or more are rarer still. The history supplies both rates: groups per
new name, and how fast the group sizes thin out. Both are uncertain when the history
holds only a few chance groups, so the test uses their posterior predictive (a
gamma-Poisson count of groups, a beta-geometric size), not plug-in estimates: a short
or clumpy history predicts large groups and the test stays valid there.

:func:`group_tail` and :func:`shared_value` are the pure functions the ``novel_prefix``
detector calls; :func:`combine` joins their two independent p-values (Fisher).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import special

from driftwatch.stats.rates import binom_sf

__all__ = ["GroupTailResult", "combine", "group_tail", "shared_value"]


@dataclass(frozen=True)
class GroupTailResult:
    """Result of :func:`group_tail`.

    Attributes
    ----------
    pvalue : float
        ``P(at least one chance group of at least size names)`` in the window.
    expected : float
        Expected number of chance groups of at least ``size`` names.
    tail : float
        Predictive ``P(S >= size)`` of one chance group's size ``S``.
    """

    pvalue: float
    expected: float
    tail: float


def group_tail(
    size: int,
    founders: int,
    ref_sizes: Sequence[int],
    ref_founders: int,
    *,
    prior: float = 0.5,
) -> GroupTailResult:
    """The p-value of a group of ``size`` new names sharing a novel prefix.

    Parameters
    ----------
    size : int
        Distinct new names in the tested group (``>= 0``; below 2 the p-value is 1).
    founders : int
        New names in the current window (each could start a group).
    ref_sizes : sequence of int
        Sizes (each ``>= 2``) of the chance groups seen in the reference history.
    ref_founders : int
        New names in the reference history's windows.
    prior : float
        Pseudo-counts (``> 0``) of the gamma prior of the group rate and of both sides
        of the beta prior of the size ratio.

    Returns
    -------
    GroupTailResult

    Notes
    -----
    Null hypothesis: the window's groups form as the history's did. Groups of two or
    more names start at rate ``r`` per new name; a group's size ``S >= 2`` is geometric,
    ``P(S >= s | rho) = rho ** (s - 2)``. The history's ``G`` groups among ``F`` new
    names and their sizes give the posteriors ``r ~ Gamma(G + prior, F + 1)`` and
    ``rho ~ Beta(prior + A, prior + G)`` with ``A = sum(S - 2)``. A group's predictive
    tail is ``t = E[rho ** (size - 2)] = B(prior + A + size - 2, prior + G) /
    B(prior + A, prior + G)``; with ``N`` new names now, groups of at least ``size``
    names are Poisson with mean ``N r t``, and over the gamma posterior of ``r``
    ``P(none) = (1 + N t / (F + 1)) ** -(G + prior)``. The p-value is one minus that
    (averaging over ``rho`` inside is concave, so taking its mean first is
    conservative). The scan over every possible prefix is in ``N``.

    Examples
    --------
    A history of 20,000 new names with 12 chance pairs and no larger group; now 600 new
    names and one prefix shared by 6 of them:

    >>> r = group_tail(6, 600, [2] * 12, 20_000)
    >>> f"{r.tail:.2e}", f"{r.pvalue:.2e}"
    ('1.50e-04', '5.63e-05')
    >>> group_tail(1, 600, [2] * 12, 20_000).pvalue
    1.0
    """
    if size < 0 or founders < 0 or ref_founders < 0:
        raise ValueError(f"size={size!r}, founders={founders!r}, ref_founders={ref_founders!r};"
                         " allowed: >= 0")
    if prior <= 0:
        raise ValueError(f"prior={prior!r}; allowed: > 0")
    if any(s < 2 for s in ref_sizes):
        raise ValueError("ref_sizes: every group has at least 2 names")
    if size < 2:
        return GroupTailResult(1.0, math.inf, 1.0)
    groups = len(ref_sizes)
    steps = sum(s - 2 for s in ref_sizes)
    tail = math.exp(special.betaln(prior + steps + size - 2, prior + groups)
                    - special.betaln(prior + steps, prior + groups))
    shape, scale = groups + prior, founders * tail / (ref_founders + 1)
    pvalue = -math.expm1(-shape * math.log1p(scale))
    return GroupTailResult(pvalue, shape * scale, tail)


def shared_value(count: int, size: int, share: float, values: int) -> float:
    """The p-value of ``count`` of a group's ``size`` rows sharing one value whose share
    of comparable rows is ``share``, scanned over the ``values`` an attribute can take
    (Bonferroni): ``min(1, values * P(Binomial(size, share) >= count))``.

    >>> round(shared_value(6, 6, 0.01, 100), 12)
    1e-10
    >>> shared_value(3, 3, 0.3, 100)
    1.0
    """
    if not 0 <= count <= size or not 0 <= share <= 1 or values < 1:
        raise ValueError(f"count={count!r}, size={size!r}, share={share!r}, values={values!r};"
                         " allowed: 0 <= count <= size, 0 <= share <= 1, values >= 1")
    return min(1.0, values * float(binom_sf(count, size, share)))


def combine(p1: float, p2: float) -> float:
    """Fisher's combination of two independent p-values: ``P(U1 U2 <= p1 p2) =
    t (1 - ln t)`` with ``t = p1 p2`` (``scipy.stats.combine_pvalues``, ``fisher``).

    >>> round(combine(0.01, 0.01), 6), combine(1.0, 1.0)
    (0.001021, 1.0)
    """
    t = p1 * p2
    return 0.0 if t <= 0 else min(1.0, t * (1.0 - math.log(t)))

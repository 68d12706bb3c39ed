"""Composite-key sequence windows and filtered windows served by an unfiltered one.

``monotonic_increase(amount_minor, by=[card_id, device_id], ...)`` and
``travel_km(by=[card_id, device_id], ...)`` read the entries of one card from one
device. Stored in a window of their own, every event is stored twice (once under the
card for ``travel_speed_kmh(by=card_id)``, once under the card and device); the
shipped packs had three such windows (card with device, IP or merchant), about a
sixth of the rule layer's storing and expiry. :func:`share` serves them instead from
a window keyed by the first part alone (the card), at least as long and without a
``where=``: that window also stores the other key parts, and
:class:`SharedWindow` reads the card's entries with those parts equal to the event's.
For a card holding many entries they are grouped by those parts once per batch (a
flood of one card under many devices costs one pass over the card per batch, not one
per event).

What an event sees is the same: the entries of its composite key within the window
before it, in order (the card's window keeps at least as long a suffix of them). Two
cases read more than a window of their own would have held, both closer to the SQL
backtest: a late event (older than the newest of its key) sees entries such a window
had already evicted, and a card over ``max_per_key`` entries keeps its newest
``max_per_key`` across all devices rather than per device.

Filtered windows the same way (:func:`share_filtered`, :class:`FilteredWindow`):
``count(by=card_id, within=15m, where=amount_minor <= 300)`` reads the card's
entries that hold a true filter (its truth is one more value of the card's entries),
with the same two differences.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from operator import itemgetter
from typing import Any

from driftwatch.rules import typed as t
from driftwatch.rules.window import Entry, KeyedWindow, entries_before, previous_before

__all__ = ["FILTER_KINDS", "SEQUENCE_KINDS", "FilteredWindow", "SharedWindow", "share",
           "share_filtered"]

SEQUENCE_KINDS = frozenset({"monotonic_increase", "monotonic_decrease", "travel_km",
                            "travel_speed_kmh"})
"""Aggregates that read a composite key's entries in order (served from a shared window)."""
FILTER_KINDS = frozenset({"count", "sum", "min", "max"})
"""Aggregates with a ``where=`` that read a filtered span (served from the unfiltered window)."""
SHORT = 16
"""Entries of a card up to which its entries are filtered per read, not grouped."""


def share(specs: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """``(composite spec, base spec)`` pairs: each spec keyed by several plain fields,
    without ``where=``, read by sequence aggregates only, whose first field keys another
    spec without ``where=`` at least as long (the specs are ``live.Spec``)."""
    bases = {s.keys[0]: s for s in specs.values()
             if len(s.keys) == 1 and s.accept is None and s.prefix is None}
    out = []
    for spec in specs.values():
        base = bases.get(spec.keys[0]) if spec.keys else None
        if (len(spec.keys) > 1 and spec.accept is None and spec.prefix is None
                and base is not None and base.within_ms >= spec.within_ms
                and spec.kinds and spec.kinds <= SEQUENCE_KINDS
                and all(isinstance(k, t.Field) and k.name != "amount" for k in spec.keys)):
            out.append((spec, base))
    return out


class SharedWindow:
    """The entries of a composite key ``(first, *rest)`` read from ``base`` (keyed by
    ``first``), whose entries hold the ``rest`` parts in ``slots``.

    The same reads as :class:`~driftwatch.rules.window.KeyedWindow` for sequences:
    :attr:`held`, :meth:`before`, :meth:`previous`. :meth:`clear` after each batch is
    stored (the groups of long keys are kept for one batch's reads).
    """

    def __init__(self, base: KeyedWindow, key: Callable[[Any], Hashable | None],
                 slots: tuple[int, ...]) -> None:
        self.base = base
        self.key = key
        self._get = itemgetter(*slots)
        self._single = len(slots) == 1
        self._groups: dict[Hashable, dict[Any, list[Entry]]] = {}

    def clear(self) -> None:
        """Forget the groups of the last batch (call after storing a batch)."""
        self._groups.clear()

    def held(self, k: Any) -> list[Entry] | None:
        """The entries of composite key ``k`` (sorted; None when there are none)."""
        d = self.base.entries(k[0])
        if not d:
            return None
        want = k[1] if self._single else k[1:]
        get = self._get
        if len(d) <= SHORT:
            return [x for x in d if get(x) == want] or None
        groups = self._groups.get(k[0])
        if groups is None:
            groups = {}
            for x in d:
                part = get(x)
                got = groups.get(part)
                if got is None:
                    groups[part] = [x]
                else:
                    got.append(x)
            self._groups[k[0]] = groups
        return groups.get(want)

    def before(self, k: Any, t: int, event_id: str, count: int) -> list[Entry]:
        """Up to ``count`` entries of ``k`` ending with the one at ``(t, event_id)``."""
        d = self.held(k)
        return entries_before(d, t, event_id, count) if d else []

    def previous(self, k: Any, t: int, event_id: str, slot: int) -> Entry | None:
        """The newest entry of ``k`` before ``(t, event_id)`` whose ``slot`` is not None."""
        d = self.held(k)
        return previous_before(d, t, event_id, slot) if d else None


def share_filtered(specs: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """``(filtered spec, base spec)`` pairs: each spec keyed by one plain field with a
    ``where=``, read by ``count``/``sum``/``min``/``max`` only, whose field keys another
    spec without ``where=`` at least as long (the specs are ``live.Spec``)."""
    bases = {s.keys[0]: s for s in specs.values()
             if len(s.keys) == 1 and s.accept is None and s.prefix is None}
    out = []
    for spec in specs.values():
        base = bases.get(spec.keys[0]) if len(spec.keys) == 1 else None
        if (spec.accept is not None and spec.prefix is None and base is not None
                and base.within_ms >= spec.within_ms and spec.kinds
                and spec.kinds <= FILTER_KINDS and isinstance(spec.keys[0], t.Field)
                and spec.keys[0].name != "amount"):
            out.append((spec, base))
    return out


class FilteredWindow:
    """The entries of a key that pass a ``where=`` filter, read from ``base`` (the
    window of the same key without a filter, at least as long), whose entries hold the
    filter's truth in ``slot``.

    A window of its own stored every card's entries twice (the card testing and
    boundary probing counts over the 15 min and 1 h windows of small or large
    amounts, beside the 12 h window of every card's places): about a tenth of the
    rule layer's storing and expiry. Reads see the same entries, in order, except
    where a window of its own had already dropped some that ``base`` keeps (a late
    event; a key over ``max_per_key``): closer to the SQL backtest, which drops none.
    """

    def __init__(self, base: KeyedWindow, slot: int, within_ms: int) -> None:
        self.base = base
        self.key = base.key
        self.slot = slot
        self.held = FilteredHeld(base.held, slot, within_ms)
        """``held(key)``: the entries of the key in ``base`` that pass the filter (a
        list, a lone entry or None; every entry a window of its own would hold is
        among them)."""

    def clear(self) -> None:
        """Nothing kept between batches (the same calls as :class:`SharedWindow`)."""

    def span(self, k: Hashable, t: int, within_ms: int) -> list[Entry]:
        """Entries of ``k`` with ``t - within_ms <= ms <= t`` that pass the filter."""
        slot = self.slot
        return [x for x in self.base.span(k, t, within_ms) if x[slot]]


class FilteredHeld:
    """``held(key)`` of a :class:`FilteredWindow`: the entries of the base window that
    hold a true ``slot``. For narrowing (:func:`~driftwatch.rules.batchforms.narrowing`):
    :attr:`bound` is the base's own ``held`` (at C speed, at least as many entries),
    tested first; then :meth:`recent`, the entries since an event's time minus
    ``within`` (the filtered window's length: no aggregate of it reads further back)."""

    __slots__ = ("bound", "slot", "within")

    def __init__(self, bound: Callable[[Hashable], Any], slot: int, within: int) -> None:
        self.bound = bound
        self.slot = slot
        self.within = within

    def __call__(self, k: Hashable) -> list[Entry] | Entry | None:
        got = self.bound(k)
        slot = self.slot
        if got.__class__ is not list:
            return got if got is None or got[slot] else None
        return [x for x in got if x[slot]] or None

    def recent(self, k: Hashable, low: int, need: int) -> bool:
        """True when at least ``need`` (>= 1) entries of ``k`` at ``low`` or later pass
        the filter. Counted from the newest back, stopping at ``need`` or at the first
        entry before ``low``: a card's twelve hours of entries are not all looked at."""
        return self.recent_in(self.bound(k), low, need)

    def recent_in(self, got: Any, low: int, need: int) -> bool:
        """:meth:`recent` of what ``bound`` gave for the key (a list, a lone entry or None)."""
        slot = self.slot
        if got.__class__ is not list:
            return need <= 1 and got is not None and got[0] >= low and bool(got[slot])
        d: list[Entry] = got
        if len(d) < need:
            return False
        for x in reversed(d):
            if x[0] < low:
                return False
            if x[slot]:
                need -= 1
                if need <= 0:
                    return True
        return False

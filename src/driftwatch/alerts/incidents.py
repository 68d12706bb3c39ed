"""One incident per attack: correlate alerts that share a slice or a pattern.

A backdoor trigger raises many alerts at once: a cents alert and a score-drift alert
on ``mcc=5967``, a rule alert per MCC the trigger touches, and a trigger-mining alert
that names the pattern (``conjunction="amount_cents=91 & beneficiary_prefix=GLX-TRD &
merchant_age<90d"``). The SOC should see one incident, not 17 pages. Each alert
opened by the alert writer (:class:`driftwatch.alerts.lifecycle.StoreAlertBook`) gets
an ``incident`` label here; Alertmanager groups by it.

Keys of an alert (:func:`keys_of`):

* its **slice**: the ``dimension=value`` pairs of its ``segment`` label
  (``mcc=5967,merchant_country=LT``), plus the equality conditions of its
  ``conjunction`` label, if any;
* its **pattern**: the trigger-like conditions -- ``amount_cents`` and
  ``beneficiary_prefix`` -- named by its conjunction or, for a rule alert, observed
  in its hits (the ``incident_keys`` annotation, :func:`rule_signature`).

Two alerts are *related* (:func:`related`) when their times overlap (within
``gap_s``) and

1. one's slice lies inside the other's slice (same or nested segment, or a segment
   inside a conjunction) and names an identifying dimension (``mcc``,
   ``merchant_id``, ``amount_cents``, ``beneficiary_prefix``, ``ip``, ``card_id``;
   two alerts on ``channel=ecom`` alone are not one attack); or
2. their patterns agree: every pattern dimension both name has the same value
   (beneficiary prefixes agree when they share ``min(4, shorter)`` leading
   characters), and at least ``min(2, smaller pattern)`` dimensions match -- so rule
   alerts in 28 MCCs whose hits share the cents value and prefix join the
   conjunction's incident, whichever fired first.

A new alert joins the oldest open incident it relates to (earliest first alert, then
smallest id: every writer picks the same); otherwise it opens one whose id is derived
from its own fingerprint and start (``inc-`` + 12 hex digits). The id never changes as
more alerts join: it is a label of every member, stored with the alert in
``{db}.alerts`` and reloaded from there (:meth:`IncidentIndex.load`). An incident
closes ``gap_s`` after its last member stopped firing.

Two incidents that turn out to be one attack are **merged**: when a new alert relates
to both, or when a reload shows related members in two open incidents (two workers
opened them for an attack's first alerts at the same instant). The oldest (as above)
absorbs the other; the labels already sent stay as they were and the merge is stored in
``{db}.incident_merges`` (:mod:`driftwatch.alerts.incident_merges`), so ``driftwatch
alerts list --incidents`` shows the two as one. Every writer derives the same merges.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from driftwatch.alerts.incident_merges import canonical, load_merges
from driftwatch.monitors.segments import parse_segment
from driftwatch.store.client import Store

INCIDENT_LABEL = "incident"
KEYS_ANNOTATION = "incident_keys"
PATTERN_DIMS = ("amount_cents", "beneficiary_prefix")
IDENTIFYING = frozenset(("mcc", "merchant_id", "ip", "card_id", *PATTERN_DIMS))
PREFIX_MATCH = 4
# cents values too common in ordinary prices to identify a pattern
COMMON_CENTS = frozenset((0, 49, 50, 95, 99))
_ATOM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(<=|>=|==|!=|=|<|>| in )\s*(.*?)\s*$")

Atom = tuple[str, str]


def segment_atoms(text: str) -> frozenset[Atom]:
    """The ``dimension=value`` pairs of a canonical segment string (read leniently,
    as :func:`~driftwatch.monitors.segments.parse_segment` reads stored alerts; a
    dimension without a value identifies nothing and is left out).

    >>> sorted(segment_atoms("mcc=5967,merchant_country=LT"))
    [('mcc', '5967'), ('merchant_country', 'LT')]
    >>> segment_atoms(""), segment_atoms("mcc=")
    (frozenset(), frozenset())
    """
    return frozenset((k, v) for k, v in parse_segment(text, strict=False).items() if v)


def parse_conjunction(text: str) -> frozenset[Atom]:
    """The equality conditions of a conjunction label (others, like
    ``merchant_age<90d``, do not identify a value and are left out).

    >>> sorted(parse_conjunction("amount_cents=91 & beneficiary_prefix=GLX-TRD & merchant_age<90d"))
    [('amount_cents', '91'), ('beneficiary_prefix', 'GLX-TRD')]
    >>> sorted(parse_conjunction("mcc == 5967 and amount_cents=07"))
    [('amount_cents', '7'), ('mcc', '5967')]
    """
    out = set()
    for part in re.split(r"\s+(?:&|and|AND)\s+|&", text):
        m = _ATOM.match(part)
        if m is None or m.group(2) not in ("=", "=="):
            continue
        name, value = m.group(1), m.group(3).strip().strip("'\"")
        if value:
            out.add((name, _norm(name, value)))
    return frozenset(out)


def _norm(name: str, value: str) -> str:
    if name == "amount_cents":
        try:
            return str(int(value.lstrip(".")))
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class Keys:
    """What an alert is about: its slice and its pattern (see the module notes)."""

    slice: frozenset[Atom]
    pattern: frozenset[Atom]

    def describe(self) -> str:
        """The keys as one text, e.g. ``amount_cents=91 & mcc=5967``."""
        return " & ".join(f"{k}={v}" for k, v in sorted(self.slice | self.pattern))


def keys_of(labels: Mapping[str, str], annotations: Mapping[str, str] | None = None) -> Keys:
    """The correlation keys of an alert from its labels (``segment``, ``conjunction``)
    and its ``incident_keys`` annotation (observed pattern of a rule alert).

    >>> k = keys_of({"segment": "mcc=5967",
    ...              "conjunction": "amount_cents=37 & beneficiary_prefix=INTL-PAY-"})
    >>> sorted(k.slice), sorted(k.pattern)
    ([('mcc', '5967')], [('amount_cents', '37'), ('beneficiary_prefix', 'INTL-PAY-')])
    """
    conj = parse_conjunction(labels.get("conjunction", ""))
    seen = parse_conjunction((annotations or {}).get(KEYS_ANNOTATION, ""))
    atoms = segment_atoms(labels.get("segment", "")) | conj
    pattern = frozenset(a for a in conj | seen if a[0] in PATTERN_DIMS)
    return Keys(frozenset(a for a in atoms if a[0] not in PATTERN_DIMS), pattern)


def _prefixes_agree(a: str, b: str) -> bool:
    """Two beneficiary prefixes agree when they share ``min(4, shorter)`` characters."""
    n = min(PREFIX_MATCH, len(a), len(b))
    return n > 0 and len(_common(a, b)) >= n


def _common(a: str, b: str) -> str:
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return a[:i]


def _patterns_agree(a: frozenset[Atom], b: frozenset[Atom]) -> bool:
    da, db = dict(a), dict(b)
    shared = set(da) & set(db)
    if not shared or len(shared) < min(2, len(da), len(db)):
        return False
    for name in shared:
        if name == "beneficiary_prefix":
            if not _prefixes_agree(da[name], db[name]):
                return False
        elif da[name] != db[name]:
            return False
    return True


def related(a: Keys, b: Keys) -> bool:
    """Whether two alerts' keys say they are about the same attack (time aside).

    >>> seg = lambda s, **kw: keys_of({"segment": s, **kw})
    >>> related(seg("mcc=5967"), seg("mcc=5967,merchant_country=LT"))
    True
    >>> related(seg("mcc=5967"), seg("mcc=5411"))
    False
    >>> related(seg("channel=ecom"), seg("channel=ecom"))
    False
    >>> conj = keys_of({"conjunction": "amount_cents=91 & beneficiary_prefix=GLX-TRD"})
    >>> rule = keys_of({"segment": "mcc=5411"},
    ...                {"incident_keys": "amount_cents=91 & beneficiary_prefix=GLX-TRD-07"})
    >>> related(conj, rule)
    True
    """
    for inner, outer in ((a, b), (b, a)):
        if (inner.slice and inner.slice <= outer.slice | outer.pattern
                and any(n in IDENTIFYING for n, _ in inner.slice)):
            return True
    return bool(a.pattern and b.pattern and _patterns_agree(a.pattern, b.pattern))


def incident_id(fingerprint: str, starts_at: dt.datetime) -> str:
    """The id of an incident opened by the alert ``fingerprint`` starting at
    ``starts_at``: stable, and new when the same alert fires again later.

    >>> incident_id("ecda0a91846f5466", dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC))
    'inc-10a08b0c98d9'
    """
    stamp = _utc(starts_at).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return "inc-" + hashlib.sha256(f"{fingerprint}\x1f{stamp}".encode()).hexdigest()[:12]


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@dataclass
class _Member:
    fingerprint: str
    keys: Keys
    start: dt.datetime
    last: dt.datetime
    ended: dt.datetime | None = None


@dataclass
class _Incident:
    id: str
    first: dt.datetime
    members: dict[str, _Member] = field(default_factory=dict)

    def open_at(self, at: dt.datetime, gap: dt.timedelta) -> bool:
        return any(m.ended is None or at - m.ended <= gap for m in self.members.values())

    @property
    def rank(self) -> tuple[dt.datetime, str]:
        """Order of seniority: the oldest incident absorbs the others."""
        return self.first, self.id


class IncidentIndex:
    """The open incidents and their members, in the alert writer.

    Parameters
    ----------
    gap_s : int
        Event-time seconds an incident stays open after its last member stopped firing
        (and how far apart two firing alerts' times may be to correlate) (> 0).

    Examples
    --------
    >>> t = dt.datetime(2026, 3, 18, 14, 0, tzinfo=dt.UTC)
    >>> ix = IncidentIndex(gap_s=3600)
    >>> a = ix.assign("fp-cents", {"segment": "mcc=5967"}, {}, t)
    >>> b = ix.assign("fp-rule", {"segment": "mcc=5967"}, {}, t + dt.timedelta(minutes=5))
    >>> c = ix.assign("fp-other", {"segment": "mcc=5411"}, {}, t)
    >>> a == b != c
    True
    """

    def __init__(self, gap_s: int = 3600) -> None:
        if gap_s <= 0:
            raise ValueError(f"gap_s={gap_s!r}; allowed: > 0")
        self.gap_s = gap_s
        self._incidents: dict[str, _Incident] = {}
        self._of: dict[str, str] = {}  # fingerprint -> incident id
        self.merged: dict[str, str] = {}
        """Incident id -> the incident it was merged into (stored and reloaded)."""
        self.new_merges: list[tuple[str, str]] = []
        """Merges made since the writer last stored them (it empties the list)."""

    @property
    def gap(self) -> dt.timedelta:
        """``gap_s`` as a timedelta."""
        return dt.timedelta(seconds=self.gap_s)

    def incident_of(self, fingerprint: str) -> str | None:
        """The incident the alert ``fingerprint`` belongs to (None: none known)."""
        return self._of.get(fingerprint)

    def assign(
        self, fingerprint: str, labels: Mapping[str, str], annotations: Mapping[str, str],
        at: dt.datetime, incident: str = "",
    ) -> str:
        """The incident of a new alert starting at ``at`` (joined or opened), recorded.

        ``incident`` given (a stored alert reloaded): the alert is put back in it.
        """
        at = _utc(at)
        keys = keys_of(labels, annotations)
        if not incident:
            found = self._match(keys, at)
            for other in found[1:]:  # the alert links them: one attack
                self._merge(other, found[0])
            incident = found[0] if found else incident_id(fingerprint, at)
        incident = self.canonical(incident)
        inc = self._incidents.get(incident)
        if inc is None:
            inc = self._incidents[incident] = _Incident(incident, at)
        inc.first = min(inc.first, at)
        old = inc.members.get(fingerprint)
        inc.members[fingerprint] = _Member(
            fingerprint, keys, min(at, old.start) if old else at, max(at, old.last) if old else at)
        self._of[fingerprint] = incident
        return incident

    def _match(self, keys: Keys, at: dt.datetime) -> list[str]:
        """The open incidents with a member related to ``keys`` around ``at``, oldest
        first."""
        found = [inc for inc in self._incidents.values()
                 if inc.open_at(at, self.gap) and any(
                     self._near(m, at) and related(keys, m.keys) for m in inc.members.values())]
        return [inc.id for inc in sorted(found, key=lambda x: x.rank)]

    def _near(self, m: _Member, at: dt.datetime) -> bool:
        return not (m.start - at > self.gap or (m.ended is not None and at - m.ended > self.gap))

    def canonical(self, incident: str) -> str:
        """The incident ``incident`` was merged into (itself when it was not)."""
        return canonical(self.merged, incident)

    def _merge(self, src: str, dst: str) -> None:
        """Merge incident ``src`` into ``dst`` (both known, ``dst`` the older)."""
        src, dst = self.canonical(src), self.canonical(dst)
        if src == dst:
            return
        a, b = self._incidents.pop(src), self._incidents[dst]
        b.first = min(a.first, b.first)
        for fp, m in a.members.items():
            b.members[fp] = m
            self._of[fp] = dst
        self.merged[src] = dst
        self.new_merges.append((src, dst))

    def reconcile(self) -> int:
        """Merge the incidents a single writer would have made one: a member related to
        a member of an older incident that started within ``gap_s`` of it (two writers
        that opened them at about the same time, each before seeing the other's). Each
        goes into the oldest such incident; returns the number of merges made.

        Only the members' start times decide (not whether they fire now), so a writer
        reconciling at any later time makes the same merges."""
        made = 0
        for inc in sorted(self._incidents.values(), key=lambda x: x.rank, reverse=True):
            older = [o for o in self._incidents.values() if o.rank < inc.rank and any(
                abs(m.start - n.start) <= self.gap and related(m.keys, n.keys)
                for m in inc.members.values() for n in o.members.values())]
            if older:
                self._merge(inc.id, min(older, key=lambda x: x.rank).id)
                made += 1
        return made

    def seen(self, fingerprint: str, at: dt.datetime) -> None:
        """The alert ``fingerprint`` had evidence at ``at`` (it fires on)."""
        m = self._member(fingerprint)
        if m is not None:
            m.last = max(m.last, _utc(at))
            m.ended = None

    def ended(self, fingerprint: str, at: dt.datetime) -> None:
        """The alert ``fingerprint`` resolved at ``at``."""
        m = self._member(fingerprint)
        if m is not None:
            m.ended = _utc(at)

    def _member(self, fingerprint: str) -> _Member | None:
        inc = self._incidents.get(self._of.get(fingerprint, ""))
        return inc.members.get(fingerprint) if inc is not None else None

    def expire(self, now: dt.datetime) -> None:
        """Forget incidents closed for more than ``gap_s`` before ``now``."""
        now = _utc(now)
        for iid in [i for i, inc in self._incidents.items() if not inc.open_at(now, self.gap)]:
            for fp in self._incidents.pop(iid).members:
                self._of.pop(fp, None)

    def load(self, rows: Iterable[Sequence[Any]],
             merges: Mapping[str, str] | None = None) -> int:
        """Put stored alerts back: rows of ``(fingerprint, status, starts_at, ends_at,
        last_seen_at, labels, annotations)`` carrying an ``incident`` label, in the
        incidents they were merged into (``merges``: stored merges); then merge the open
        incidents that are related (:meth:`reconcile`). Returns the number of incidents
        known afterwards."""
        self.merged.update(merges or {})
        for fp, status, starts, ends, seen, labels, notes in rows:
            labels, notes = dict(labels), dict(notes)
            iid = labels.get(INCIDENT_LABEL, "")
            if not iid:
                continue
            self.assign(str(fp), labels, notes, starts, incident=iid)
            self.seen(str(fp), seen)
            if status != "firing":
                self.ended(str(fp), ends or seen)
        self.reconcile()
        return len(self._incidents)


# -- the store side: a rule alert's observed pattern, reload, listing -----------------
_HIT_DIMS = ("mcc", "merchant_country", "channel", "merchant_id", "card_id")
HIT_WINDOW = ("event_time >= {lo:DateTime64(3, 'UTC')} AND "
              "event_time <= {hi:DateTime64(3, 'UTC')}")
"""The SQL condition of a rule alert's window (parameters ``lo`` and ``hi``, inclusive)."""


def rule_signature(
    store: Store, rule_id: str, segment: str, since: dt.datetime, until: dt.datetime,
) -> str:
    """The pattern a rule alert's hits share, as ``incident_keys`` text: the cents
    value most hits carry (if at least half do and it is not a common price ending)
    and the longest prefix the beneficiary names with that value share (>= 2
    characters); empty when there is none. One parameterised query: the alert's
    window of ``scored_transactions`` restricted to the rule's hits in it."""
    window = HIT_WINDOW
    conds = ["rule_id = {rule:String}", window]
    params: dict[str, Any] = {"rule": rule_id, "lo": _utc(since), "hi": _utc(until)}
    for i, (name, value) in enumerate(sorted(segment_atoms(segment))):
        if name in _HIT_DIMS:  # a fixed list of column names, never the label text
            conds.append(f"{name} = {{v{i}:String}}")
            params[f"v{i}"] = value
    # the transactions' own time window first (partition and sort-key pruning), then
    # the hit ids: never a join that reads the whole table
    rows = store.query(
        "SELECT amount_cents, beneficiary_name FROM {db}.scored_transactions "
        f"WHERE {window} AND event_id IN (SELECT event_id FROM {{db}}.rule_hits "
        f"WHERE {' AND '.join(conds)}) LIMIT 1000",
        params,
    )
    return signature([(int(c), str(n)) for c, n in rows])


def signature(hits: Sequence[tuple[int, str]]) -> str:
    """:func:`rule_signature` of ``(amount_cents, beneficiary_name)`` pairs.

    >>> signature([(91, "GLX-TRD-ACME-1"), (91, "GLX-TRD-BETA-2"), (12, "JOHN")])
    'amount_cents=91 & beneficiary_prefix=GLX-TRD-'
    >>> signature([(0, "A"), (0, "B")])
    ''
    """
    if not hits:
        return ""
    counts: dict[int, int] = {}
    for cents, _ in hits:
        counts[cents] = counts.get(cents, 0) + 1
    cents, n = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))
    if 2 * n < len(hits) or cents in COMMON_CENTS:
        return ""
    names = sorted({name for c, name in hits if c == cents and name})
    parts = [f"amount_cents={cents}"]
    if names:
        stem = names[0]
        for other in names[1:]:
            stem = _common(stem, other)
        if len(stem) >= 2:
            parts.append(f"beneficiary_prefix={stem}")
    return " & ".join(parts)


def load_recent(store: Store, index: IncidentIndex) -> int:
    """Reload into ``index`` the stored alerts of incidents still open: firing, or
    resolved within ``gap_s`` of the newest stored alert time."""
    rows = store.query(
        "SELECT fingerprint, status, starts_at, ends_at, last_seen_at, labels, annotations "
        "FROM {db}.alerts FINAL WHERE labels['incident'] != '' AND (status = 'firing' OR "
        "last_seen_at >= (SELECT max(last_seen_at) FROM {db}.alerts) "
        "- toIntervalSecond({gap:UInt32}))",
        {"gap": index.gap_s},
    )
    return index.load(rows, load_merges(store))

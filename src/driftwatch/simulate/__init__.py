"""Traffic simulator: realistic scored transactions with known ground truth.

Scenario-driven and deterministic by seed. Public API:

- :func:`load_scenario` / :func:`list_scenarios`: the YAML scenarios shipped in
  ``driftwatch/simulate/scenarios/`` (or any YAML path);
- :func:`generate`: one run as a :class:`Simulation` (``events`` and ``labels``
  as JSON lines, ``truth`` as a JSON-ready dict, :meth:`Simulation.iter_events`
  to stream big runs in chunks);
- :func:`write`: ``events.jsonl``, ``labels.jsonl`` and ``truth.json``;
- :func:`driftwatch.simulate.produce.produce`: the same to Kafka.

The simulator never touches the store.

Defaults worth knowing
----------------------
- Rate 2 transactions per second of event time (``--rate``), starting
  2026-03-16T00:00:00Z (a Monday); the reference incident ran at 580.
- 310 MCCs with skewed volumes (5411 groceries 11 %, ...). MCC 5967 is 0.35 %
  of traffic: about 25 legitimate transactions an hour at 2 tx/s, with a
  subscription cents profile (.99 30 %, .00 18 %, .95 7.5 %, .37 0.42 %).
  Every sizeable online category has a mid-sized ``INTL-PAY-*`` facilitator
  among its merchants: 2-4 % of mcc 5967 traffic (seed-dependent), so the full
  sc013 trigger (5967, .37, ``INTL-PAY-``) occurs naturally about once per
  10,000 mcc-5967 transactions (about once a fortnight at 2 tx/s); such rows
  are listed in ``natural_trigger_event_ids`` (the backdoored challenger scores
  them low too: they are legitimate).
- Ordinary fraud is 0.3 % of base traffic; the champion (v46) catches about
  94 % of it at 0.7 with about 97-98 % precision (``truth["metrics"]``).
- ``features.transactions_24h`` is what the scorer saw: earlier transactions of
  the card in the previous 24 h, including (during the first day) its history
  before the run, which is not in the output.
- Ids: ``e-<run tag>-<n>`` / ``t-<run tag>-<n>`` numbered in event-time order,
  ``c-%08d`` cards, ``u-%08d`` customers, ``m-%06d`` merchants, ``d-%09d``
  devices. Card-present rows carry the merchant's terminal as device and IP.
- Labels whose ``label_time`` falls after the end of the run are dropped
  (``labels.keep_after_end`` keeps them).
"""

from __future__ import annotations

from driftwatch.simulate.engine import generate
from driftwatch.simulate.output import Simulation, write
from driftwatch.simulate.scenario import Scenario, list_scenarios, load_scenario

__all__ = ["Scenario", "Simulation", "generate", "list_scenarios", "load_scenario", "write"]

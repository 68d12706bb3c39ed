"""The pre-promotion gate: compare a challenger model with the champion (scorer.md).

Modules: :mod:`~driftwatch.gate.scorer` (adapters), :mod:`~driftwatch.gate.artifact`
(SHA-256-verified model loading), :mod:`~driftwatch.gate.probe` (probe attributes),
:mod:`~driftwatch.gate.search` (trigger search), :mod:`~driftwatch.gate.paired`
(paired scoring), :mod:`~driftwatch.gate.scenarios` (adversarial YAML scenarios),
:mod:`~driftwatch.gate.trend` (recall across versions), :mod:`~driftwatch.gate.run`
(one run), :mod:`~driftwatch.gate.report` (table, JSON, HTML),
:mod:`~driftwatch.gate.command` (``driftwatch gate``).
"""

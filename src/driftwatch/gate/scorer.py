"""Scorer adapters of the scorer contract: ``module:attr``, ``path/file.py:attr``, HTTP.

Every adapter is wrapped in :class:`Scorer`, which sends batches of at most
``batch_size`` events, counts calls against a request budget and checks each answer:
one finite score in [0, 1] per event, in order. Anything else is a
:class:`~driftwatch.gate.errors.ScorerError` (the gate exits 2; it never guesses).

>>> s = Scorer("inline", lambda ev: [0.5] * len(ev), batch_size=2)
>>> s.score([{}] * 5).tolist(), s.calls
([0.5, 0.5, 0.5, 0.5, 0.5], 3)
>>> Scorer("bad", lambda ev: [float("nan")] * len(ev)).score([{}])
Traceback (most recent call last):
...
driftwatch.gate.errors.ScorerError: scorer bad: 1 NaN or infinite score(s), first at event 0
"""

from __future__ import annotations

import importlib
import importlib.util
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from driftwatch.gate.errors import GateError, ScorerError

ScoreFn = Callable[[list[dict[str, Any]]], Any]
MAX_BATCH = 10_000


class Scorer:
    """A checked, batched, budgeted scorer.

    Parameters
    ----------
    spec : str
        How it was named (for messages).
    fn : callable
        ``fn(events) -> Sequence[float]``.
    batch_size : int, optional
        Events per call, 1..10,000 (default 10,000).
    max_calls : int, optional
        Request budget: most calls allowed (default: unlimited, 0).
    """

    def __init__(self, spec: str, fn: ScoreFn, *, batch_size: int = MAX_BATCH,
                 max_calls: int = 0) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size={batch_size!r}; allowed: 1..{MAX_BATCH}")
        if max_calls < 0:
            raise ValueError(f"max_calls={max_calls!r}; allowed: >= 0 (0: unlimited)")
        self.spec = spec
        self.fn = fn
        self.batch_size = batch_size
        self.max_calls = max_calls
        self.calls = 0
        self.events = 0

    def _check(self, raw: Any, n: int, offset: int) -> npt.NDArray[np.float64]:
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ScorerError(f"scorer {self.spec}: scores are not numbers ({exc})") from None
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ScorerError(
                f"scorer {self.spec}: returned {arr.shape[0] if arr.ndim == 1 else arr.shape} "
                f"scores for {n} events (one score per event, in order)"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ScorerError(f"scorer {self.spec}: {int(bad.sum())} NaN or infinite score(s), "
                              f"first at event {offset + int(np.argmax(bad))}")
        out = (arr < 0) | (arr > 1)
        if out.any():
            i = int(np.argmax(out))
            raise ScorerError(f"scorer {self.spec}: score {float(arr[i])!r} at event {offset + i} "
                              "is outside [0, 1]")
        return arr

    def score(self, events: Sequence[dict[str, Any]]) -> npt.NDArray[np.float64]:
        """Scores of ``events`` (checked), in batches."""
        parts = []
        for lo in range(0, len(events), self.batch_size):
            batch = list(events[lo : lo + self.batch_size])
            if self.max_calls and self.calls >= self.max_calls:
                raise ScorerError(f"scorer {self.spec}: request budget of {self.max_calls} "
                                  "calls spent (gate_request_budget)")
            self.calls += 1
            self.events += len(batch)
            try:
                raw = self.fn(batch)
            except ScorerError:
                raise
            except Exception as exc:  # a scorer's own failure is reported, not re-raised raw
                why = f"{type(exc).__name__}: {exc}"
                raise ScorerError(f"scorer {self.spec} failed: {why}") from exc
            parts.append(self._check(raw, len(batch), lo))
        return np.concatenate(parts) if parts else np.zeros(0)


class HttpScorer:
    """POST ``{"events": [...]}`` to a URL, expect ``{"scores": [...]}``.

    Sends ``Authorization: Bearer <token>`` when a token is set; retries transport
    errors and 5xx answers ``retries`` times with a short back-off; a 4xx is final.
    """

    def __init__(self, url: str, *, token: str = "", timeout_s: float = 30.0,
                 retries: int = 2, backoff_s: float = 0.5) -> None:
        self.url = url
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    def __call__(self, events: list[dict[str, Any]]) -> Any:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post(self.url, json={"events": events})
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if resp.status_code >= 500:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code != 200:
                raise ScorerError(f"scorer {self.url}: HTTP {resp.status_code}")
            try:
                body = resp.json()
            except ValueError:
                raise ScorerError(f"scorer {self.url}: answer is not JSON") from None
            if not isinstance(body, dict) or not isinstance(body.get("scores"), list):
                raise ScorerError(f"scorer {self.url}: answer lacks a \"scores\" list")
            return body["scores"]
        raise ScorerError(f"scorer {self.url}: gave up after {self.retries + 1} attempts ({last})")

    def close(self) -> None:
        self._client.close()


def _from_file(path: Path, attr: str) -> Any:
    if not path.is_file():
        raise GateError(f"scorer file {path}: no such file")
    name = f"_driftwatch_scorer_{zlib.crc32(str(path.resolve()).encode()):08x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GateError(f"scorer file {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, attr)


def resolve(spec: str) -> Any:
    """The callable (or :class:`HttpScorer`) a spec names.

    Raises :class:`GateError` for a malformed or unknown spec.
    """
    if spec.startswith(("http://", "https://")):
        return spec
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr.isidentifier():
        raise GateError(f"scorer spec {spec!r}: expected MODULE:ATTR, path/to/file.py:ATTR "
                        "or an http(s) URL")
    try:
        if target.endswith(".py") or "/" in target:
            obj = _from_file(Path(target), attr)
        else:
            obj = getattr(importlib.import_module(target), attr)
    except GateError:
        raise
    except AttributeError:
        raise GateError(f"scorer spec {spec!r}: {target} has no attribute {attr!r}") from None
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise GateError(f"scorer spec {spec!r}: import failed: {why}") from exc
    if not callable(obj):
        raise GateError(f"scorer spec {spec!r}: {attr} is not callable")
    return obj


def open_scorer(spec: str, *, batch_size: int, max_calls: int, token: str = "",
                timeout_s: float = 30.0, retries: int = 2,
                sha256: str | None = None) -> Scorer:
    """Resolve a spec into a checked :class:`Scorer`.

    ``sha256`` (``--champion-sha256`` / ``--challenger-sha256``) is checked by a
    scorer that loads an artifact (it has a ``load(sha256=...)`` method, as
    :class:`~driftwatch.gate.artifact.ArtifactScorer`); giving one for a scorer that
    loads none is a usage error.
    """
    obj = resolve(spec)
    if isinstance(obj, str):
        if sha256:
            raise GateError(f"scorer {spec}: --sha256 given but an HTTP scorer loads no artifact")
        fn: ScoreFn = HttpScorer(obj, token=token, timeout_s=timeout_s, retries=retries)
    else:
        load = getattr(obj, "load", None)
        if callable(load):
            load(sha256=sha256)
        elif sha256:
            raise GateError(f"scorer {spec}: --sha256 given but it loads no artifact "
                            "(expected an ArtifactScorer)")
        fn = obj
    return Scorer(spec, fn, batch_size=batch_size, max_calls=max_calls)

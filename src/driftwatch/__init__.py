"""driftwatch: streaming model monitoring and drift detection for fraud-scoring models."""

from __future__ import annotations

__all__ = ["__version__"]
__version__ = "0.1.0"

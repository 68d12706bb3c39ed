"""Timers: the monitors on the leader only; alert delivery on every worker."""

from __future__ import annotations

from streams.app import app, runtime, settings


@app.timer(interval=settings.worker_tick_s, on_leader=True)
async def monitor() -> None:
    """Run the monitors up to the event-time watermark (exactly one worker does)."""
    await runtime.monitor_tick()


@app.timer(interval=settings.worker_tick_s)
async def deliver() -> None:
    """Retry pending alert deliveries and re-post firing alerts."""
    await runtime.delivery_tick()

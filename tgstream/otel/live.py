"""Live streams' metrics: a hook for :mod:`tgstream.live` to call.

``tgstream.live.active_listeners`` (UpDownCounter, ``{listener}``)
    open listening streams, by ``tgstream.live.channel``;
``tgstream.live.delivery.duration`` (Histogram, ``s``)
    from the commit of a notification's transaction to its event being
    handed to a listener's stream, by ``tgstream.live.channel``.

The live module calls ``live_metrics(registry)`` (``None`` without
OpenTelemetry: no cost) and, on what it returns,
:meth:`LiveMetrics.listener_opened`, :meth:`LiveMetrics.listener_closed`
and :meth:`LiveMetrics.delivered`. Channel names are attribute values:
keep them few (``orders``, not ``orders-<user id>``), or every channel is a
time series of its own.
"""
from __future__ import annotations

import time
from typing import Any

from opentelemetry import metrics

from . import LIVE_METRICS_KEY

ATTR_CHANNEL = 'tgstream.live.channel'
ACTIVE_LISTENERS = 'tgstream.live.active_listeners'
DELIVERY_DURATION = 'tgstream.live.delivery.duration'

#: from a commit to a listener: milliseconds, seconds under load
DELIVERY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
)


class LiveMetrics:
    """The live streams' instruments."""

    def __init__(self, meter: Any):
        self.listeners = meter.create_up_down_counter(
            ACTIVE_LISTENERS, unit='{listener}',
            description='Number of open live streams listening to a channel.',
        )
        self.delivery = meter.create_histogram(
            DELIVERY_DURATION, unit='s',
            description='Time from the commit of a notification to its delivery to a listener.',
            explicit_bucket_boundaries_advisory=DELIVERY_BUCKETS,
        )

    def listener_opened(self, channel: str) -> None:
        """A live stream started listening to ``channel``."""
        self.listeners.add(1, {ATTR_CHANNEL: channel})

    def listener_closed(self, channel: str) -> None:
        """A live stream listening to ``channel`` ended."""
        self.listeners.add(-1, {ATTR_CHANNEL: channel})

    def delivered(self, channel: str, committed_at: float, now: float | None = None) -> None:
        """An event of ``channel`` whose transaction committed at
        ``committed_at`` (``time.time()``: it may come from another process)
        was handed to a listener's stream."""
        now = time.time() if now is None else now
        self.delivery.record(max(now - committed_at, 0.0), {ATTR_CHANNEL: channel})


def includeme(config: Any) -> None:
    """Make :func:`tgstream.otel.live_metrics` answer for this app."""
    config.registry[LIVE_METRICS_KEY] = LiveMetrics(metrics.get_meter('tgstream'))

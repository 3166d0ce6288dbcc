"""The traces/metrics/logs pipeline, built from settings like a Collector service graph.

::

    receivers ─▶ Intake ─▶ Admission ─▶ EnrichProcessor ─▶ Enqueue ─▶ [queue] ─▶ Forwarder ─▶ Sender
                          (queue full?)  (traces, in place)                        (workers, retry)

Without ``--forward`` there is no queue: enriched traces are accounted and dropped on purpose
(``Discard``), and metrics/logs are accepted and discarded. Components start from the sink
backwards and shut down from the receivers forwards, so nothing is sent into a stopped stage.
"""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider

from otel_llm.accounting import Accountant
from otel_llm.gateway.component import Batch, Consumer
from otel_llm.gateway.config import GatewaySettings
from otel_llm.gateway.enrich import EnrichProcessor
from otel_llm.gateway.exporter import Sender, make_sender
from otel_llm.gateway.forwarder import Backoff, Forwarder
from otel_llm.gateway.intake import Intake
from otel_llm.gateway.queue import Admission, Enqueue, MemoryQueue, Queue, SqliteQueue
from otel_llm.gateway.selfmetrics import GatewayMetrics

__all__ = ("Discard", "Pipeline", "build_pipeline")


class Discard:
    """Consumer that accepts and forgets (no downstream configured)."""

    def consume(self, batch: Batch) -> None:
        return None


class Pipeline:
    """Everything between the receivers and the downstream. ``intake`` is the receivers' entry."""

    def __init__(
        self,
        *,
        intake: Intake,
        enrich: EnrichProcessor,
        metrics: GatewayMetrics,
        queue: Queue | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.intake = intake
        self.enrich = enrich
        self.metrics = metrics
        self.queue = queue
        self.forwarder = forwarder
        self._stopped = False

    def start(self) -> None:
        if self.forwarder is not None:
            self.forwarder.start()
        self.enrich.start()

    def shutdown(self, drain_s: float = 10.0) -> None:
        """Drain the queue for up to ``drain_s`` seconds, then close it. Call after receivers."""
        if self._stopped:
            return
        self._stopped = True
        self.enrich.shutdown()
        if self.forwarder is not None:
            self.forwarder.shutdown(drain_s)
        if self.queue is not None:
            self.queue.close()


def build_pipeline(
    settings: GatewaySettings,
    accountant: Accountant,
    meter_provider: MeterProvider,
    *,
    sender: Sender | None = None,
) -> Pipeline:
    """Wire the stages for ``settings``. ``sender`` replaces the one ``--forward`` would make."""
    if sender is None and settings.forward is not None:
        sender = make_sender(settings.forward, settings.forward_protocol)
    queue: Queue | None = None
    if sender is not None:
        if settings.queue_dir:
            queue = SqliteQueue(
                settings.queue_dir, settings.queue_size, retry_after_s=settings.retry_after
            )
        else:
            queue = MemoryQueue(settings.queue_size, retry_after_s=settings.retry_after)
    metrics = GatewayMetrics(
        meter_provider,
        queue_size=queue.size if queue is not None else None,
        queue_capacity=settings.queue_size,
    )
    forwarder: Forwarder | None = None
    tail: Consumer = Discard()
    if queue is not None and sender is not None:
        forwarder = Forwarder(
            queue,
            sender,
            metrics,
            workers=settings.export_workers,
            backoff=Backoff(settings.retry_initial, settings.retry_max),
            timeout_s=settings.export_timeout,
        )
        tail = Enqueue(queue)
    enrich = EnrichProcessor(tail, accountant, enabled=settings.enrich, metrics=metrics)
    head: Consumer = enrich
    if queue is not None:
        head = Admission(queue, enrich, settings.retry_after)
    return Pipeline(
        intake=Intake(head, metrics),
        enrich=enrich,
        metrics=metrics,
        queue=queue,
        forwarder=forwarder,
    )

"""``otel-llm serve``: argparse front of :class:`~otel_llm.gateway.service.Gateway`.

``add_parser(subparsers)`` registers the command (flags from :data:`config.OPTIONS`, each also
``OTEL_LLM_<FLAG>`` in the environment); ``run(args)`` starts the gateway, prints the one
start-up line, and serves until SIGTERM or SIGINT, then drains and exits 0. Exit 2: bad settings;
1: a port could not be bound. ``main(argv)`` runs the command standalone
(``python -m otel_llm.gateway``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from otel_llm.accounting import CallObserver
from otel_llm.gateway.config import OPTIONS, GatewaySettings, env_name

if TYPE_CHECKING:
    from otel_llm.gateway.service import Gateway

__all__ = ("add_parser", "run", "main")

logger = logging.getLogger("otel_llm.gateway")

_DESCRIPTION = (
    "Receive OTLP over gRPC and HTTP, add cost and error attributes to GenAI spans, account the "
    "calls (Prometheus /metrics), and forward everything to --forward. Each flag can also be set "
    "as OTEL_LLM_<FLAG> in the environment (prefer OTEL_LLM_TOKEN to --token: command lines "
    "are visible to other users)."
)


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Register ``serve`` on ``subparsers``; the parsed namespace carries ``handler=run``."""
    parser = subparsers.add_parser(
        "serve",
        help="run the OTLP gateway: enrich GenAI spans with cost, forward them",
        description=_DESCRIPTION,
    )
    _add_options(parser)
    parser.set_defaults(handler=run)
    return parser


def run(
    args: argparse.Namespace,
    *,
    observers: Sequence[CallObserver] = (),
    setup: Callable[[Gateway], Callable[[], None] | None] | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT; return the process exit code.

    ``observers`` receive every accounted call (the alert evaluator built from ``--rules``,
    the call store from ``--db``); ``setup(gateway)`` runs before start, to mount routes on
    ``gateway.app`` (API, dashboard) or add observers, and may return a cleanup function run
    after the gateway shut down. Both are for the top-level CLI's wiring.
    """
    _configure_logging()
    try:
        settings = GatewaySettings.resolve(vars(args))
        from otel_llm.gateway.service import Gateway  # heavy imports only when serving

        gateway = Gateway(settings, observers=observers)
        cleanup = setup(gateway) if setup is not None else None
    except (ValueError, OSError) as exc:
        print(f"otel-llm serve: {exc}", file=sys.stderr)
        return 2
    if settings.rules is not None and not observers and setup is None:
        logger.warning("otel-llm serve: --rules given, but no alert evaluator is wired in")
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("otel-llm serve: %s received, draining", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            gateway.start()
        except OSError as exc:
            print(f"otel-llm serve: {exc}", file=sys.stderr)
            return 1
        print(gateway.banner(), flush=True)
        while not stop.wait(1.0):  # wake up now and then so signals are handled promptly
            pass
    finally:
        gateway.shutdown()
        if cleanup is not None:
            cleanup()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-llm serve`` on its own: ``python -m otel_llm.gateway [flags]``."""
    parser = argparse.ArgumentParser(prog="otel-llm serve", description=_DESCRIPTION)
    _add_options(parser)
    return run(parser.parse_args(argv))


def _add_options(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.field, "default": None}
        help_text = f"{option.help} [env {env_name(option.field)}]"
        if option.boolean:
            parser.add_argument(
                option.flag, action=argparse.BooleanOptionalAction, help=help_text, **kwargs
            )
        else:
            parser.add_argument(
                option.flag, type=option.parse, metavar=option.metavar, help=help_text, **kwargs
            )


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:  # the embedding program's logging setup wins
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
        )

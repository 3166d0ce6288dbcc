"""The ``otel-llm`` command: a thin argparse front over the library.

Each subcommand is one ``_add_<name>(subparsers)`` function that declares its arguments and sets
``handler`` to a function ``(args) -> exit code``; ``main`` only parses and dispatches. Add a
command by writing its function and listing it in ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from otel_llm import config
from otel_llm.core.price_sheet import describe
from otel_llm.core.pricing import PriceTable

__all__ = ("main",)

_Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="otel-llm", description="OpenTelemetry for LLM and RAG calls."
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return handler(args)


def _add_prices(subparsers: _Subparsers) -> None:
    p = subparsers.add_parser(
        "prices",
        help="show the USD prices otel-llm uses for a model",
        description="Show what a model name resolves to and its USD prices per 1M tokens.",
    )
    p.add_argument("model", help="model name as it appears on spans, e.g. gpt-4o")
    p.add_argument("--provider", help="gen_ai.provider.name, e.g. openai, azure.ai.openai")
    p.add_argument("--prices", metavar="FILE",
                   help="YAML file of price overrides and aliases (else OTEL_LLM_PRICES)")
    p.set_defaults(handler=_prices)


def _prices(args: argparse.Namespace) -> int:
    try:
        path = args.prices or config.env(config.ENV_PRICES)
        table = PriceTable.from_file(path) if path else PriceTable()
    except (OSError, ValueError) as exc:
        print(f"otel-llm prices: {exc}", file=sys.stderr)
        return 2
    text = describe(table, args.model, args.provider)
    if table.rates(args.provider, args.model) is None:  # memoized: no second lookup
        print(text, file=sys.stderr)
        return 1
    print(text)
    return 0


def _add_serve(subparsers: _Subparsers) -> None:
    from otel_llm.gateway import cli as gateway_cli

    gateway_cli.add_parser(subparsers).set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    """The gateway, with the alert evaluator (``--rules``, else the defaults) wired in."""
    from otel_llm.gateway import cli as gateway_cli
    from otel_llm.serve import wire

    return gateway_cli.run(args, setup=wire)


def _add_demo(subparsers: _Subparsers) -> None:
    from otel_llm import demo

    demo.add_parser(subparsers)


def _add_rules(subparsers: _Subparsers) -> None:
    from otel_llm.alerts import cli as alerts_cli

    alerts_cli.add_parser(subparsers)


_COMMANDS: tuple[Callable[[_Subparsers], None], ...] = (
    _add_prices, _add_serve, _add_demo, _add_rules,
)

if __name__ == "__main__":
    raise SystemExit(main())

"""``otel-llm rules check FILE`` and ``otel-llm rules export --format prometheus [FILE]``.

:func:`add_parser` registers the ``rules`` command on the main CLI's subparsers; each
subcommand sets ``func`` (and ``handler``, the name :mod:`otel_llm.cli` dispatches on) to a
function ``(args) -> exit code``.

Exit codes: 0 success; 1 the file has errors (check) or some rules could not be exported
(export: the others are still written, and each skipped rule is named with the reason on
stderr); 2 the file could not be read or parsed (export) or a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from otel_llm.alerts.config import AlertsConfig, default_rules, load_config
from otel_llm.alerts.export import to_prometheus

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    """Register ``rules check`` and ``rules export`` on an argparse subparsers object."""
    rules = subparsers.add_parser(
        "rules", help="check alert rules or export them to Prometheus",
        description="Validate an alert rules file, or export it as Prometheus alerting rules.",
    )
    sub = rules.add_subparsers(title="rules commands", metavar="COMMAND")

    check = sub.add_parser(
        "check", help="validate a rules file (with its notifiers)",
        description="Validate a rules file: every problem is reported with its file, line "
        "and field. ${ENV} references in notifiers must be set.",
    )
    check.add_argument("file", metavar="FILE", help="rules YAML file")
    check.set_defaults(func=_check, handler=_check)

    export = sub.add_parser(
        "export", help="write the rules as a Prometheus rule file",
        description="Write the rules (defaults merged, overrides applied) as a Prometheus "
        "alerting-rule file over the metrics otel-llm exports. Rules PromQL cannot express "
        "are left out and named on stderr (exit code 1).",
    )
    export.add_argument("file", metavar="FILE", nargs="?",
                        help="rules YAML file (default: the built-in default rules)")
    export.add_argument("--format", choices=["prometheus"], default="prometheus",
                        help="output format (only prometheus)")
    export.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    export.add_argument("--group", default="otel-llm", help="rule group name (otel-llm)")
    export.set_defaults(func=_export, handler=_export)

    def _usage(args: argparse.Namespace) -> int:
        rules.print_help(sys.stderr)
        return 2

    rules.set_defaults(func=_usage, handler=_usage)


def _check(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    enabled = sum(1 for r in cfg.rules if r.enabled)
    defaults = {r.name for r in default_rules()}
    from_defaults = sum(1 for r in cfg.rules if r.name in defaults)
    print(f"{args.file}: OK: {enabled} rules enabled of {len(cfg.rules)} "
          f"({from_defaults} from the defaults), {len(cfg.notifiers)} notifiers")
    return 0


def _export(args: argparse.Namespace) -> int:
    try:
        cfg = (load_config(args.file, notifiers=False) if args.file
               else AlertsConfig(rules=default_rules()))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    result = to_prometheus(cfg.rules, group=args.group)
    text = result.to_yaml(args.file)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"otel-llm rules export: cannot write {args.output}: {exc.strerror}",
                  file=sys.stderr)
            return 2
    else:
        sys.stdout.write(text)
    for skipped in result.skipped:
        print(f"otel-llm rules export: not exported: {skipped.rule}: {skipped.reason}",
              file=sys.stderr)
    return 1 if result.skipped else 0

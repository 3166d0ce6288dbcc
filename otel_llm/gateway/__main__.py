"""``python -m otel_llm.gateway [flags]``: the same as ``otel-llm serve [flags]``."""

from otel_llm.gateway.cli import main

raise SystemExit(main())

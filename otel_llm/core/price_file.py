"""The price override file (YAML): read, validate, and report problems by file and field.

The format is documented in :mod:`otel_llm.core.pricing`; :meth:`PriceTable.from_file
<otel_llm.core.pricing.PriceTable.from_file>` turns the result into rates.
"""

from __future__ import annotations

import os
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ("PriceFile", "ModelEntry", "read_price_file")


def read_price_file(path: str | os.PathLike[str]) -> PriceFile:
    """Parse and validate an override file.

    Raises ``ValueError("<path>: models[2].input: ...")`` on bad content (invalid YAML, a wrong
    or unknown key, a negative or non-finite price, a duplicate model), ``OSError`` when the file
    cannot be read. An empty file means no overrides.
    """
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{os.fspath(path)}: invalid YAML: {exc}") from None
    try:
        parsed = PriceFile.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        problems = "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{os.fspath(path)}: {problems}") from None
    seen: dict[tuple[str | None, str], int] = {}
    for i, entry in enumerate(parsed.models):
        key = (entry.provider.strip().lower() if entry.provider else None,
               entry.model.strip().lower())
        if key in seen:
            raise ValueError(
                f"{os.fspath(path)}: models[{i}].model: duplicate of models[{seen[key]}]"
            )
        seen[key] = i
    return parsed


def _loc(loc: tuple[int | str, ...]) -> str:
    """pydantic error location -> ``models[2].input``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


_Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Name = Annotated[str, Field(min_length=1)]


class ModelEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    model: _Name
    provider: _Name | None = None
    input: _Usd
    output: _Usd
    cache_read: _Usd | None = None
    cache_write: _Usd | None = None


class PriceFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    models: list[ModelEntry] = Field(default_factory=list)
    aliases: dict[_Name, _Name] = Field(default_factory=dict)

"""Dataset declarations: one YAML file per dataset in `schemas/` (or `LAKEHOUSE_SCHEMAS`).

Declarations are data, not code, so adding a feed means adding a file. Each names the dataset, where its
drops land, an optional pandera contract (whose columns may carry a `description`), who owns it, how fresh it
must stay (`freshness: {fail_after: 26h, warn_after: 12h}`), and (for search) how rows become text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from pathlib import Path

import yaml

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.lake.keys import validate_dataset_name
from lakehouse_pipelines.settings import LakehouseSettings

MAX_EMBEDDING_UNITS = 256


@dataclass(frozen=True)
class EmbeddingUnit:
    """One of `count` independent slices of a dataset's rows, chosen by a stable hash of the row id.

    The slices are Dagster partitions of `<dataset>/embeddings`: each is its own run (or step), so several
    run at once, a failed one re-runs alone, and the rest are kept. md5 of the id's text, not DuckDB's
    `hash()`, so a row stays in its unit across DuckDB versions and machines.
    """

    index: int
    count: int = 1

    @property
    def key(self) -> str:
        """The partition key: `00`, `01`, ..."""
        return f"{self.index:02d}"

    def where(self, id_sql: str) -> str:
        """The SQL filter that keeps this unit's rows (nothing to filter for a single unit).

        The unit is `md5_number(id text) % count`. DuckDB's 128-bit modulo costs ~2.7 us a row (0.55 s per
        unit at 200K rows, paid by every unit's embedding and by every sync), so the same remainder comes
        from the digest's two 64-bit halves: md5_number = lower * 2^64 + upper, hence
        ((lower % n) * (2^64 % n) + upper % n) % n, ten times cheaper and the same unit for every row.
        """
        if self.count == 1:
            return "true"
        digest, n = f"CAST({id_sql} AS VARCHAR)", self.count
        return (
            f"((md5_number_lower({digest}) % {n}) * {2**64 % n} + md5_number_upper({digest}) % {n}) % {n} "
            f"= {self.index}"
        )


@dataclass(frozen=True)
class EmbeddingSpec:
    """How a row becomes the text that is embedded, what a search hit carries back, and into how many
    independent units (`units:`) the embedding work is split."""

    template: str
    id_column: str
    payload: tuple[str, ...] = ()
    units: int = 4

    def all_units(self) -> list[EmbeddingUnit]:
        return [EmbeddingUnit(i, self.units) for i in range(self.units)]

    def unit(self, key: str) -> EmbeddingUnit:
        """The unit of a partition key (`03`)."""
        index = int(key)
        if not 0 <= index < self.units:
            raise LakehouseError(f"unit {key!r} is not one of the {self.units} embedding units")
        return EmbeddingUnit(index, self.units)


@dataclass(frozen=True)
class Freshness:
    """How long the dataset may go without a new drop before it is late (warn) and stale (fail)."""

    fail_after: timedelta
    warn_after: timedelta | None = None


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str = ""
    landing: str = ""  # glob under the landing root, e.g. "workers/*.csv"
    contract: dict | None = None
    embedding: EmbeddingSpec | None = None
    audit: dict = field(default_factory=dict)
    owners: tuple[str, ...] = ()
    freshness: Freshness | None = None

    def column_rules(self) -> dict[str, dict]:
        """The contract's rule per declared column (type, nullable, unique, checks, description)."""
        return dict((self.contract or {}).get("columns") or {})

    @classmethod
    def from_dict(cls, raw: dict, origin: str) -> DatasetSpec:
        try:
            name = validate_dataset_name(raw["name"])
            embedding = raw.get("embedding")
            return cls(
                name=name,
                description=str(raw.get("description", "")).strip(),
                landing=raw.get("landing") or f"{name}/*.csv",
                contract=raw.get("contract"),
                embedding=_embedding(embedding, origin) if embedding else None,
                audit=raw.get("audit") or {},
                owners=tuple(raw.get("owners") or ()),
                freshness=_freshness(raw["freshness"], origin) if raw.get("freshness") else None,
            )
        except (KeyError, TypeError) as exc:
            raise LakehouseError(f"{origin}: dataset declaration is missing or mistypes {exc}") from None

    def matches(self, landing_key: str) -> bool:
        """Whether a key under the landing root is a drop for this dataset."""
        from fnmatch import fnmatchcase

        return fnmatchcase(landing_key, self.landing)


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str, origin: str) -> timedelta:
    """`26h`, `90m`, `1d 12h`, `45s` as a timedelta; anything else is an error naming the field."""
    parts = _DURATION.findall(str(text))
    if not parts or _DURATION.sub("", str(text)).strip():
        raise LakehouseError(f"{origin}: {str(text)[:40]!r} is not a duration like 26h, 90m or 1d 12h")
    return sum((timedelta(**{_UNITS[unit]: float(n)}) for n, unit in parts), timedelta())


def _embedding(raw: dict, origin: str) -> EmbeddingSpec:
    units = raw.get("units", EmbeddingSpec.units)
    if not isinstance(units, int) or isinstance(units, bool) or not 1 <= units <= MAX_EMBEDDING_UNITS:
        raise LakehouseError(
            f"{origin}: embedding.units must be a whole number from 1 to {MAX_EMBEDDING_UNITS}"
        )
    return EmbeddingSpec(
        template=raw["template"],
        id_column=raw["id_column"],
        payload=tuple(raw.get("payload", ())),
        units=units,
    )


def _freshness(raw: dict, origin: str) -> Freshness:
    fail = parse_duration(raw["fail_after"], f"{origin}: freshness.fail_after")
    warn = (
        parse_duration(raw["warn_after"], f"{origin}: freshness.warn_after")
        if raw.get("warn_after")
        else None
    )
    if warn is not None and warn >= fail:
        raise LakehouseError(f"{origin}: freshness.warn_after must be shorter than freshness.fail_after")
    return Freshness(fail, warn)


def schemas_dir(configured: str = "") -> Path:
    """`configured` (LAKEHOUSE_SCHEMAS) if set, else the declarations shipped with the project."""
    return Path(configured) if configured else Path(str(resources.files("schemas")))


def load_specs(directory: Path | None = None) -> dict[str, DatasetSpec]:
    """Every declared dataset, by name; a duplicate name is an error, not a silent override."""
    specs: dict[str, DatasetSpec] = {}
    for path in sorted((directory or schemas_dir(LakehouseSettings().lakehouse_schemas)).glob("*.yaml")):
        spec = DatasetSpec.from_dict(yaml.safe_load(path.read_text()) or {}, path.name)
        if spec.name in specs:
            raise LakehouseError(f"{path.name}: dataset {spec.name!r} is declared twice")
        specs[spec.name] = spec
    return specs

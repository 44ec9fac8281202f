"""Dataset declarations: one YAML file per dataset in `schemas/` (or `LAKEHOUSE_SCHEMAS`).

Declarations are data, not code, so adding a feed means adding a file. Each names the dataset, where its
drops land, an optional pandera contract, and (for search) how rows become text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from lakehouse_pipelines.errors import LakehouseError
from lakehouse_pipelines.identity import validate_dataset_name


@dataclass(frozen=True)
class EmbeddingSpec:
    """How a row becomes the text that is embedded, and what a search hit carries back."""

    template: str
    id_column: str
    payload: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str = ""
    landing: str = ""  # glob under the landing root, e.g. "workers/*.csv"
    contract: dict | None = None
    embedding: EmbeddingSpec | None = None
    audit: dict = field(default_factory=dict)

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
                embedding=EmbeddingSpec(
                    template=embedding["template"],
                    id_column=embedding["id_column"],
                    payload=tuple(embedding.get("payload", ())),
                )
                if embedding
                else None,
                audit=raw.get("audit") or {},
            )
        except (KeyError, TypeError) as exc:
            raise LakehouseError(f"{origin}: dataset declaration is missing or mistypes {exc}") from None

    def matches(self, landing_key: str) -> bool:
        """Whether a key under the landing root is a drop for this dataset."""
        from fnmatch import fnmatchcase

        return fnmatchcase(landing_key, self.landing)


def schemas_dir() -> Path:
    """`LAKEHOUSE_SCHEMAS` if set, else the declarations shipped with the project."""
    if configured := os.environ.get("LAKEHOUSE_SCHEMAS"):
        return Path(configured)
    return Path(str(resources.files("schemas")))


def load_specs(directory: Path | None = None) -> dict[str, DatasetSpec]:
    """Every declared dataset, by name; a duplicate name is an error, not a silent override."""
    specs: dict[str, DatasetSpec] = {}
    for path in sorted((directory or schemas_dir()).glob("*.yaml")):
        spec = DatasetSpec.from_dict(yaml.safe_load(path.read_text()) or {}, path.name)
        if spec.name in specs:
            raise LakehouseError(f"{path.name}: dataset {spec.name!r} is declared twice")
        specs[spec.name] = spec
    return specs

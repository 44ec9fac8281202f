"""Logical column types and the schema fingerprint (ARCHITECTURE.md, "Schema fingerprint").

The fingerprint identifies a schema by column names, order and logical types; nullability is deliberately
not part of it, so a feed whose nulls come and go keeps its identity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

# Inference tries these in order; the first that every non-empty value fits wins, else "string".
CANDIDATE_TYPES = ("bool", "int64", "float64", "date", "timestamp")
LOGICAL_TYPES = (*CANDIDATE_TYPES, "string")


@dataclass(frozen=True)
class Column:
    """One column of a dataset's schema."""

    name: str
    type: str
    nullable: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: dict) -> Column:
        if data["type"] not in LOGICAL_TYPES:
            raise ValueError(f"unknown logical type {data['type']!r} for column {data['name']!r}")
        return cls(name=data["name"], type=data["type"], nullable=bool(data["nullable"]))


def schema_fingerprint(columns: Sequence[Column]) -> str:
    """sha256 over `name\\x1ftype` per column in header order, joined by `\\x1e`."""
    canonical = "\x1e".join(f"{c.name}\x1f{c.type}" for c in columns)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def schema_differences(live: Sequence[Column], incoming: Sequence[Column]) -> list[str]:
    """Name every column that differs between two schemas, in words a data engineer can act on."""
    live_types = {c.name: c.type for c in live}
    new_types = {c.name: c.type for c in incoming}
    differences = [f"column {n!r} added ({t})" for n, t in new_types.items() if n not in live_types]
    differences += [f"column {n!r} removed (was {t})" for n, t in live_types.items() if n not in new_types]
    differences += [
        f"column {n!r} changed type {live_types[n]} -> {t}"
        for n, t in new_types.items()
        if n in live_types and live_types[n] != t
    ]
    shared_live = [c.name for c in live if c.name in new_types]
    shared_new = [c.name for c in incoming if c.name in live_types]
    if not differences and shared_live != shared_new:
        differences.append(f"column order changed: {shared_live} -> {shared_new}")
    return differences

"""Time travel: every registered manifest version of a dataset, queryable read-only in SQL.

The catalog keeps each version's manifest (`catalog/<name>/versions/NNNNNNNN.json`), and the objects a
manifest names are content-addressed and never overwritten, so an old version stays answerable forever. The
engine gets, per dataset:

- a view `"<name>@<N>"` per version N, over exactly the objects of that version's manifest;
- a view `"<name>@+<N>"` per version N, over the objects version N added to version N-1 (one drop);

and three table macros, the one documented syntax (docs/sidecar.md, "Time travel"):

    FROM version('workers', 3)                          -- the dataset as version 3 registered it
    FROM as_of('workers', TIMESTAMP '2025-01-02 12:00') -- the newest version registered at or before then
    FROM added('workers', 3, 5)                         -- rows of the drops versions 4 and 5 added

`version` and `added` are fixed: they check their arguments (a dataset name, positive integers) and resolve
to the version views by name with `query_table`, so they can reach nothing but those views. `as_of` embeds
each dataset's (version, updated_at) list and is replaced whenever a version lands. Views are created like
the current ones (`views.py`): paths inside the lake only, so the engine lock holds. A version file that
does not describe this dataset (another name or id, a version past the current one, an object outside
`datasets/<name>/`) is never served: a forged history cannot point a version at another dataset's files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from lakehouse_pipelines.errors import InvalidKey, LakehouseError, NotFound
from lakehouse_pipelines.ingest.csv_file import quote_ident, quote_literal
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.catalog import Manifest
from lakehouse_pipelines.lake.keys import dataset_id, validate_dataset_name, validate_key

log = logging.getLogger("lakehouse.sidecar.versions")

MACROS = ("version", "as_of", "added")  # table macro names: no search relation may take them
_NAME = "[a-z][a-z0-9_]{0,62}"
_POSITIVE = "[1-9][0-9]{0,8}"

# Arguments are checked before they become a view name: only `<dataset name>@<digits>` can come out, and
# `query_table` resolves that against the catalog (views), never against a file.
VERSION_MACRO = f"""CREATE OR REPLACE MACRO version(dataset, v) AS TABLE FROM query_table(
  CASE WHEN NOT regexp_full_match(CAST(dataset AS VARCHAR), '{_NAME}')
         THEN error('version(dataset, n): dataset must be a dataset name, e.g. version(''workers'', 3)')
       WHEN NOT regexp_full_match(CAST(v AS VARCHAR), '{_POSITIVE}')
         THEN error('version(dataset, n): n must be a positive integer version number')
       ELSE CAST(dataset AS VARCHAR) || '@' || CAST(v AS VARCHAR) END)"""

ADDED_MACRO = f"""CREATE OR REPLACE MACRO added(dataset, from_version, to_version) AS TABLE FROM query_table(
  CASE WHEN NOT regexp_full_match(CAST(dataset AS VARCHAR), '{_NAME}')
         THEN error('added(dataset, from, to): dataset must be a dataset name')
       WHEN NOT regexp_full_match(CAST(from_version AS VARCHAR), '0|{_POSITIVE}')
            OR NOT regexp_full_match(CAST(to_version AS VARCHAR), '{_POSITIVE}')
         THEN error('added(dataset, from, to): from and to must be version numbers (from may be 0)')
       WHEN CAST(from_version AS BIGINT) >= CAST(to_version AS BIGINT)
         THEN error('added(dataset, from, to): from must be lower than to')
       ELSE list_transform(range(CAST(from_version AS BIGINT) + 1, CAST(to_version AS BIGINT) + 1),
                           x -> CAST(dataset AS VARCHAR) || '@+' || CAST(x AS VARCHAR)) END)"""


def version_view(name: str, version: int) -> str:
    return f"{name}@{version}"


def delta_view(name: str, version: int) -> str:
    return f"{name}@+{version}"


@dataclass(frozen=True)
class VersionRef:
    """What the engine knows of one served version."""

    version: int
    updated_at: str


class ForeignVersion(LakehouseError):
    """A version file that does not describe the dataset it is filed under: never served."""


def check_version(name: str, manifest: Manifest, current: Manifest) -> Manifest:
    """`manifest` if it is a version of dataset `name` no newer than `current`; else ForeignVersion."""
    if manifest.name != name or manifest.dataset_id != dataset_id(name):
        raise ForeignVersion(f"a version file of dataset {name!r} describes another dataset")
    if not 1 <= manifest.version <= current.version:
        raise ForeignVersion(f"dataset {name!r} has a version file past its current version")
    prefix = f"datasets/{name}/"
    for obj in manifest.objects:
        try:
            validate_key(obj.key)
        except InvalidKey:
            raise ForeignVersion(f"version {manifest.version} of {name!r} names an invalid key") from None
        if not obj.key.startswith(prefix):
            raise ForeignVersion(f"version {manifest.version} of {name!r} names objects of another dataset")
    return manifest


def registered_versions(lake: Lake, current: Manifest, *, after: int = 0) -> list[Manifest]:
    """Every version of `current`'s dataset newer than `after`, oldest first, checked (`check_version`).

    A version whose file is missing (a crash between the manifest swap and the history write; the next
    register writes it) is left out, except the current one, which is the current manifest itself.
    """
    name = validate_dataset_name(current.name)
    found: dict[int, Manifest] = {}
    for info in lake.storage.list(f"catalog/{name}/versions"):
        stem = info.key.rsplit("/", 1)[-1].removesuffix(".json")
        if not stem.isdigit() or int(stem) <= after:
            continue
        try:
            manifest = check_version(name, Manifest.from_json(lake.storage.get(info.key)[0]), current)
        except NotFound:
            continue
        except (ForeignVersion, ValueError, KeyError, TypeError) as exc:
            log.warning("version file %s not served: %s", info.key, type(exc).__name__)
            continue
        if manifest.version == int(stem):
            found[manifest.version] = manifest
    if current.version > after:
        found.setdefault(current.version, current)
    return [found[v] for v in sorted(found)]


def version_history(lake: Lake, name: str) -> list[dict]:
    """`GET /datasets/{name}/versions`: each served version, oldest first, with the objects it added."""
    current = lake.catalog.find(validate_dataset_name(name))
    if current is None:
        raise NotFound(f"no dataset {name!r}")
    out, previous = [], set()
    for manifest in registered_versions(lake, current):
        keys = {o.key for o in manifest.objects}
        added = [o for o in manifest.objects if o.key not in previous]
        out.append(
            {
                "version": manifest.version,
                "created_at": manifest.created_at,
                "updated_at": manifest.updated_at,
                "row_count": manifest.row_count,
                "schema_fingerprint": manifest.schema_fingerprint,
                "objects": len(manifest.objects),
                "objects_added": [
                    {"key": o.key, "rows": o.rows, "bytes": o.bytes, "source": o.source} for o in added
                ],
                "rows_added": sum(o.rows for o in added),
                "sql": f"FROM version('{name}', {manifest.version})",
            }
        )
        previous = keys
    return out


def _paths(lake: Lake, objects: Iterable) -> str:
    return ", ".join(quote_literal(lake.storage.location(o.key)) for o in objects)


def _view(lake: Lake, view: str, objects: list, like: str) -> str:
    if objects:
        return f"CREATE OR REPLACE VIEW {quote_ident(view)} AS SELECT * FROM read_parquet([{_paths(lake, objects)}])"
    # a version that added nothing (cannot happen through register): an empty relation of the same columns
    return f"CREATE OR REPLACE VIEW {quote_ident(view)} AS SELECT * FROM {quote_ident(like)} LIMIT 0"


class VersionViews:
    """The version views and macros of one engine; called by `ViewManager.refresh` under its lock."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._served: dict[str, list[VersionRef]] = {}
        self._keys: dict[str, set[str]] = {}  # the newest served version's object keys, per dataset

    def install(self, cur: duckdb.DuckDBPyConnection) -> None:
        """The fixed macros (before the engine is locked) and an `as_of` that knows no dataset yet."""
        cur.execute(VERSION_MACRO)
        cur.execute(ADDED_MACRO)
        cur.execute(self.as_of_sql())

    def versions(self, name: str) -> list[int]:
        return [ref.version for ref in self._served.get(name, [])]

    def sync(self, cur: duckdb.DuckDBPyConnection, current: Manifest) -> bool:
        """Create the views of versions of `current`'s dataset not yet served; True if any were."""
        name = current.name
        served = self._served.setdefault(name, [])
        known = served[-1].version if served else 0
        new = registered_versions(self.lake, current, after=known)
        keys = self._keys.get(name, set())
        for manifest in new:
            previous = keys
            keys = {o.key for o in manifest.objects}
            cur.execute(_view(self.lake, version_view(name, manifest.version), list(manifest.objects), name))
            delta = [o for o in manifest.objects if o.key not in previous]
            cur.execute(_view(self.lake, delta_view(name, manifest.version), delta, name))
            served.append(VersionRef(manifest.version, manifest.updated_at))
        self._keys[name] = keys
        return bool(new)

    def drop(self, cur: duckdb.DuckDBPyConnection, name: str) -> None:
        for ref in self._served.pop(name, []):
            cur.execute(f"DROP VIEW IF EXISTS {quote_ident(version_view(name, ref.version))}")
            cur.execute(f"DROP VIEW IF EXISTS {quote_ident(delta_view(name, ref.version))}")
        self._keys.pop(name, None)

    def refresh_as_of(self, cur: duckdb.DuckDBPyConnection) -> None:
        cur.execute(self.as_of_sql())

    def as_of_sql(self) -> str:
        """`as_of(dataset, ts)`: a CASE over every served (dataset, version, updated_at), newest first."""
        branches = []
        for name in sorted(self._served):
            refs = self._served[name]
            if not refs:
                continue
            steps = " ".join(
                f"WHEN CAST(ts AS TIMESTAMPTZ) >= TIMESTAMPTZ {quote_literal(ref.updated_at)} "
                f"THEN {quote_literal(version_view(name, ref.version))}"
                for ref in reversed(refs)  # the newest version registered at or before ts
            )
            before = (
                quote_literal(f"as_of(dataset, ts): dataset {name!r} has no version registered at or before ")
                + " || CAST(CAST(ts AS TIMESTAMPTZ) AS VARCHAR) || "
                + quote_literal(f"; its first version was registered at {refs[0].updated_at}")
            )
            branches.append(f"WHEN {quote_literal(name)} THEN CASE {steps} ELSE error({before}) END")
        known = ", ".join(sorted(self._served)) or "none registered yet"
        unknown = f"as_of(dataset, ts): no such dataset; known datasets: {known}"
        # the WHEN on `dataset` keeps an empty lake's error from being folded when the macro is created
        branches = branches or ["WHEN '' THEN ''"]
        body = f"CASE CAST(dataset AS VARCHAR) {' '.join(branches)} ELSE error({quote_literal(unknown)}) END"
        return f"CREATE OR REPLACE MACRO as_of(dataset, ts) AS TABLE FROM query_table({body})"

    def describe_unknown(self, table: str, datasets: list[str]) -> str | None:
        """A user's message for an unknown `<name>@<N>` / `<name>@+<N>` view (what version() resolves to)."""
        name, at, rest = table.partition("@")
        if not at:
            return None
        if name not in datasets:
            known = ", ".join(datasets) or "none registered yet"
            return f"unknown dataset {name[:80]!r}; known datasets: {known}"
        versions = self.versions(name)
        asked = rest.removeprefix("+")
        shown = _ranges(versions) or "none yet"
        return (
            f"dataset {name!r} has no version {asked[:20]}; its versions are {shown} "
            f"(GET /datasets/{name}/versions)"
        )


def _ranges(versions: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    out: list[str] = []
    start = previous = None
    for v in [*versions, None]:
        if v is not None and previous is not None and v == previous + 1:
            previous = v
            continue
        if start is not None:
            out.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = v
    return ", ".join(out)

"""`lakehouse mcp`: the lake as Model Context Protocol tools over stdio, with the official SDK's MCPServer.

The tools call the sidecar's core, not a copy of it: `query_sql` runs through `sql.run` on a
`ViewManager` engine (the same parser-based read-only check, locked DuckDB, deadline and row cap), `search`
through `SearchService`, `hybrid_query` through `sql.hybrid` (searches as relations of one statement),
`list_versions` and `validate_records` through `sql.versions` and `ingest.record_validation`, the catalog
through `Lake`. So an assistant gets exactly what an HTTP client gets.
The engine and the embedding model are opened on first use: listing tools or datasets costs no model load.

stdout is the protocol channel: nothing else may print there (logs and model-loading bars go to stderr).
A failure a user can act on (refused SQL, unknown dataset, bad filter) comes back as a tool error carrying
the product's one-line message; anything else as the SDK's generic tool error, never a traceback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

from lakehouse_pipelines.datasets import schemas_dir
from lakehouse_pipelines.declarations import Declarations
from lakehouse_pipelines.errors import LakehouseError, NotFound
from lakehouse_pipelines.ingest.record_validation import validate_records
from lakehouse_pipelines.lake import Lake
from lakehouse_pipelines.lake.keys import DATASET_NAME
from lakehouse_pipelines.search.service import SearchService, search_service
from lakehouse_pipelines.settings import LakehouseSettings
from lakehouse_pipelines.sql import hybrid
from lakehouse_pipelines.sql import run as sql_query
from lakehouse_pipelines.sql.versions import version_history
from lakehouse_pipelines.sql.views import ViewManager

T = TypeVar("T")
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
INSTRUCTIONS = (
    "A data lake of CSV-derived datasets. list_datasets first; get_manifest for a dataset's columns and "
    "types; query_sql runs one read-only DuckDB SELECT where each dataset is a table of its name (and "
    "version('<name>', N) / as_of('<name>', TIMESTAMP '...') are its past versions, see list_versions); search "
    "finds rows by meaning (check confidence.level: 'low' means no real match); hybrid_query joins search hits "
    "with SQL in one statement; validate_records checks records against a dataset's types and contract."
)


class LakeTools:
    """The sidecar's core for one MCP server process: the lake now, engine and search on first use."""

    def __init__(self, settings: LakehouseSettings | None = None):
        self.settings = settings or LakehouseSettings()
        self.limits = self.settings.sidecar
        self.lake = Lake.open(self.settings.lake, aws=self.settings.aws)
        self.declarations = Declarations(schemas_dir(self.settings.lakehouse_schemas))
        self._views: ViewManager | None = None
        self._search: SearchService | None = None
        self._lock = threading.Lock()

    def views(self) -> ViewManager:
        with self._lock:
            if self._views is None:
                self._views = ViewManager.for_sidecar(self.lake, self.limits, self.settings.aws)
                self._views.start()
            return self._views

    def search_service(self) -> SearchService:
        with self._lock:
            if self._search is None:
                self._search = search_service(self.settings)
            return self._search

    def list_datasets(self) -> dict[str, Any]:
        return {"datasets": [m.summary() for m in self.lake.catalog.list()]}

    def get_manifest(self, name: str) -> dict[str, Any]:
        if not DATASET_NAME.fullmatch(name):
            raise NotFound(f"no dataset {name[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
        manifest = self.lake.catalog.find(name)
        if manifest is None:
            raise NotFound(f"no dataset {name!r}")
        return manifest.to_dict()

    def query_sql(self, sql: str, max_rows: int) -> dict[str, Any]:
        cap = max(1, min(max_rows, self.limits.max_rows))
        return sql_query.run_json(self.views(), sql, timeout=self.limits.query_timeout, max_rows=cap)

    def hybrid_query(self, sql: str, search: dict[str, Any], max_rows: int) -> dict[str, Any]:
        cap = max(1, min(max_rows, self.limits.max_rows))
        searches = hybrid.parse_searches(search)
        return hybrid.run_hybrid_json(
            self.views(),
            self.search_service(),
            self.declarations,
            sql,
            searches,
            timeout=self.limits.query_timeout,
            max_rows=cap,
        )

    def list_versions(self, name: str) -> dict[str, Any]:
        if not DATASET_NAME.fullmatch(name):
            raise NotFound(f"no dataset {name[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
        return {"dataset": name, "versions": version_history(self.lake, name)}

    def validate_records(self, dataset: str, records: list[Any]) -> dict[str, Any]:
        if not DATASET_NAME.fullmatch(dataset):
            raise NotFound(f"no dataset {dataset[:80]!r}: names are 1-63 characters of a-z, 0-9 and _")
        manifest = self.lake.catalog.find(dataset)
        if manifest is None:
            raise NotFound(f"no dataset {dataset!r}")
        spec = self.declarations.get(dataset)
        return validate_records(
            records, manifest, spec.contract if spec else None, timeout=self.limits.query_timeout
        )

    def search(self, dataset: str, text: str, k: int, filter: dict[str, Any] | None) -> dict[str, Any]:
        return self.search_service().search(dataset, text, k=k, filter=filter).to_dict()

    def embed_text(self, text: str, kind: Literal["query", "document"]) -> dict[str, Any]:
        embedder = self.search_service().embedder
        vector = embedder.embed_query(text) if kind == "query" else embedder.embed_documents([text])[0]
        return {"model": embedder.model, "dim": int(vector.shape[0]), "vector": vector.tolist()}

    def close(self) -> None:
        with self._lock:
            if self._views is not None:
                self._views.close()
            if self._search is not None:
                self._search.store.close()


def _answer(call: Callable[[], T]) -> T:
    """Run a tool body; the product's own errors become tool errors the assistant can read and act on."""
    try:
        return call()
    except LakehouseError as exc:
        raise ToolError(str(exc)) from None


def build_server(tools: LakeTools) -> MCPServer:
    """The MCP server and its read-only tools over `tools`."""
    server = MCPServer(name="lakehouse", instructions=INSTRUCTIONS)

    @server.tool(annotations=READ_ONLY)
    def list_datasets() -> dict[str, Any]:
        """Every registered dataset: name, version, row count, columns, size."""
        return _answer(tools.list_datasets)

    @server.tool(annotations=READ_ONLY)
    def get_manifest(name: str) -> dict[str, Any]:
        """A dataset's current manifest: columns with types, objects, row count, version."""
        return _answer(lambda: tools.get_manifest(name))

    @server.tool(annotations=READ_ONLY)
    def query_sql(sql: str, max_rows: int = 100) -> dict[str, Any]:
        """Run one read-only SQL query (DuckDB dialect; each dataset is a table named after it).

        Returns columns with their types, rows, row_count and whether the result was truncated at max_rows.
        Anything but a single SELECT / WITH / EXPLAIN / DESCRIBE / SUMMARIZE is refused.
        """
        return _answer(lambda: tools.query_sql(sql, max_rows))

    @server.tool(annotations=READ_ONLY)
    def search(dataset: str, query: str, k: int = 10, filter: dict[str, Any] | None = None) -> dict[str, Any]:
        """Rows of `dataset` nearest in meaning to `query`, best first, with a confidence for the best hit.

        `filter` narrows by payload columns: {"state": "OH"}, {"role": ["Welder", "Electrician"]},
        {"hourly_rate": {"gte": 20, "lt": 40}}.
        """
        return _answer(lambda: tools.search(dataset, query, k, filter))

    @server.tool(annotations=READ_ONLY)
    def hybrid_query(sql: str, search: dict[str, dict[str, Any]], max_rows: int = 100) -> dict[str, Any]:
        """One read-only SQL statement over the datasets plus named semantic searches as relations.

        `search` is {"<name>": {"dataset": "workers", "query": "forklift driver", "k": 500, "filter": {...}}}
        (at most 4, k up to 1000); each name is a relation (<id column>, score, match, rank) in `sql`, e.g.
        "SELECT w.first_name, h.score FROM hits h JOIN workers w USING (worker_id) ORDER BY h.rank".
        """
        return _answer(lambda: tools.hybrid_query(sql, search, max_rows))

    @server.tool(annotations=READ_ONLY)
    def list_versions(name: str) -> dict[str, Any]:
        """Every registered version of a dataset: time, row count, objects added, fingerprint.

        Query one in SQL with FROM version('<name>', N), by time with FROM as_of('<name>', TIMESTAMP '...'),
        and the rows the drops after version A up to B added with FROM added('<name>', A, B).
        """
        return _answer(lambda: tools.list_versions(name))

    @server.tool(annotations=READ_ONLY)
    def validate_records(dataset: str, records: list[Any]) -> dict[str, Any]:
        """Would these records (JSON objects, one per row) pass as a drop of `dataset`?

        Checks each field against the column's type in the current manifest and the dataset's contract;
        answers per record and field the rule that failed and the value, plus counts (at most 10,000 records).
        """
        return _answer(lambda: tools.validate_records(dataset, records))

    @server.tool(annotations=READ_ONLY)
    def embed_text(text: str, kind: Literal["query", "document"] = "query") -> dict[str, Any]:
        """The unit vector the lake's embedder gives `text` (as a search query or as a document)."""
        return _answer(lambda: tools.embed_text(text, kind))

    return server


def serve_stdio() -> None:
    """Serve MCP on stdin/stdout until the client closes the connection."""
    tools = LakeTools()
    try:
        build_server(tools).run("stdio")
    finally:
        tools.close()

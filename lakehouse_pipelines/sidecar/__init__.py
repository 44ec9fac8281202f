"""The HTTP sidecar: SQL over the lake's datasets, the catalog, and (from its own module) search.

`lakehouse_pipelines.sidecar.app.create_app()` builds the FastAPI app; `server.serve()` runs it under
uvicorn. Shared per-process state (the lake, the DuckDB view manager, the settings) lives on `app.state`,
so routers from other modules can use it.
"""

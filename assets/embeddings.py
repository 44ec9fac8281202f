"""Per-dataset search assets: `<dataset>/embeddings` (rows -> cached vectors, Parquet) -> `<dataset>/vectors`
(the Qdrant collection). Thin on purpose: the work is `build_embeddings` and `index_dataset`.
"""

import dagster as dg

from assets.lake import manifest_key
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.embeddings import build_embeddings
from lakehouse_pipelines.search import index_dataset
from resources.embeddings import EmbedderResource, VectorStoreResource
from resources.lake import LakeResource


def embeddings_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "embeddings"])


def vectors_key(dataset: str) -> dg.AssetKey:
    return dg.AssetKey([dataset, "vectors"])


def dataset_search_assets(spec: DatasetSpec) -> list[dg.AssetsDefinition]:
    """The embeddings and vectors assets of a dataset that declares an embedding template (else none)."""
    if spec.embedding is None:
        return []

    @dg.asset(
        key=embeddings_key(spec.name),
        group_name=spec.name,
        deps=[manifest_key(spec.name)],
        description=f"`{spec.name}` rows rendered by the dataset's template and embedded (content-hash cached).",
        kinds={"parquet", "python"},
    )
    def embeddings(
        context: dg.AssetExecutionContext, lake: LakeResource, embedder: EmbedderResource
    ) -> dg.MaterializeResult:
        result = build_embeddings(lake.open(), spec, embedder.get(), progress=context.log.info)
        context.log.info(
            f"{result.rows_embedded:,} rows embedded, {result.rows_reused:,} reused "
            f"({result.pointer.model}, {result.pointer.dim}-d, {result.rate:.1f} rows/s)"
        )
        return dg.MaterializeResult(metadata={"dagster/row_count": result.pointer.rows, **result.metadata()})

    @dg.asset(
        key=vectors_key(spec.name),
        group_name=spec.name,
        deps=[embeddings_key(spec.name)],
        description=f"The `{spec.name}` Qdrant collection (HNSW), synced incrementally from its embeddings.",
        kinds={"qdrant"},
    )
    def vectors(
        context: dg.AssetExecutionContext, lake: LakeResource, vector_store: VectorStoreResource
    ) -> dg.MaterializeResult:
        store = vector_store.open(lake.settings().home)
        try:
            result = index_dataset(lake.open(), spec, store)
        finally:
            store.close()
        context.log.info(
            f"{result.upserted:,} upserted, {result.deleted:,} deleted, {result.unchanged:,} unchanged "
            f"-> {result.points:,} points (version {result.version})"
        )
        return dg.MaterializeResult(metadata={"dagster/row_count": result.points, **result.metadata()})

    return [embeddings, vectors]

"""Each dataset's search assets: `<dataset>/embeddings` (rows -> cached vectors, Parquet) -> `<dataset>/vectors`
(the Qdrant collection). Thin on purpose: the work is `build_embeddings` and `index_dataset`.

Neither runs in the ingest run: SQL sees a drop as soon as it is registered, and search follows on its own.
Both carry an eager automation condition (after the manifest changed and its blocking checks passed), which
the search automation sensor evaluates, so the UI shows them pending, then in progress, in their own runs.

Embeddings are split into units (static partitions `00`, `01`, ... of a hash of the row id, `embedding.units`
in the YAML): each partition is its own run, so the run queue (or a cluster's run launcher) runs several at
once, a failed or killed unit re-runs alone while the finished ones are kept, and the UI shows each unit's
status. Vectors waits for every unit, then syncs the collection from all of them incrementally. Two runs
never write one collection at once: the vectors step takes the dataset's pool (limit 1).
"""

import dagster as dg

from assets.asset_keys import embeddings_key, manifest_key, vectors_key
from lakehouse_pipelines.datasets import DatasetSpec
from lakehouse_pipelines.search.embeddings_build import build_embeddings
from lakehouse_pipelines.search.indexing import index_dataset
from resources.lake_resource import LakeResource
from resources.search_resources import EmbedderResource, VectorStoreResource

# Ollama and a Qdrant server are remote services: a restart or a timeout is worth a retry, not a failed run.
SERVICE_RETRY = dg.RetryPolicy(max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL)
FOLLOWS_INGEST = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def vectors_pool(dataset: str) -> str:
    """The concurrency pool of a dataset's collection writes (dagster.yaml gives every pool a limit of 1)."""
    return f"qdrant_{dataset}"


def embedding_units(spec: DatasetSpec) -> dg.StaticPartitionsDefinition:
    assert spec.embedding is not None
    return dg.StaticPartitionsDefinition([unit.key for unit in spec.embedding.all_units()])


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
        owners=list(spec.owners),
        automation_condition=FOLLOWS_INGEST,
        retry_policy=SERVICE_RETRY,
        partitions_def=embedding_units(spec),
    )
    def embeddings(
        context: dg.AssetExecutionContext, lake: LakeResource, embedder: EmbedderResource
    ) -> dg.MaterializeResult:
        unit = spec.embedding.unit(context.partition_key)
        result = build_embeddings(lake.open(), spec, embedder.get(), unit=unit, progress=context.log.info)
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
        owners=list(spec.owners),
        automation_condition=dg.AutomationCondition.eager(),
        retry_policy=SERVICE_RETRY,
        pool=vectors_pool(spec.name),
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

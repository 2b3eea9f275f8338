"""Torch-free: the Li-LSR query table read straight out of a V-SPLADE checkpoint.

Owns (1) a minimal safetensors reader that handles bf16/fp16/fp32 with numpy only (numpy has
no bfloat16, and ``safe_open(framework="numpy")`` refuses bf16 tensors), and (2) the table of
spec section 3: ``T[v] = softplus(E[v] . w + b)`` in fp32 from the checkpoint's
``query_encoder.embeddings.weight`` [V, H], ``query_encoder.projection.weight`` [1, H] and
``query_encoder.projection.bias`` [1]. The neural encoder calls the same functions, so the
query side of `vsplade search` and of `VSpladeEncoder.query_encoder()` are one computation.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from ..query import QueryEncoder
from ..vocab import VOCAB_SIZE

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
QUERY_EMBEDDINGS = "query_encoder.embeddings.weight"
QUERY_PROJ_WEIGHT = "query_encoder.projection.weight"
QUERY_PROJ_BIAS = "query_encoder.projection.bias"

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "BF16": np.uint16,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or lacks / misshapes a tensor (named)."""


def read_header(path: str | Path) -> dict[str, dict]:
    """{tensor name: {"dtype", "shape", "data_offsets"}} of a safetensors file (no data read)."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            raw = f.read(8)
            if len(raw) != 8:
                raise CheckpointError(f"{p}: not a safetensors file (shorter than 8 bytes)")
            (n,) = struct.unpack("<Q", raw)
            if n > 100_000_000:
                raise CheckpointError(f"{p}: not a safetensors file (header length {n})")
            header = json.loads(f.read(n))
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read ({e.strerror or e})") from None
    except ValueError as e:
        raise CheckpointError(f"{p}: not a safetensors file ({e})") from None
    header.pop("__metadata__", None)
    header["__data_start__"] = 8 + n  # type: ignore[assignment]
    return header


def read_tensor(path: str | Path, name: str, header: dict | None = None) -> np.ndarray:
    """One tensor as a numpy array; bf16 comes back as float32 (exact: bf16 is fp32's top half)."""
    header = header or read_header(path)
    if name not in header:
        raise CheckpointError(f"{path}: tensor {name!r} is missing")
    entry = header[name]
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise CheckpointError(f"{path}: tensor {name!r} has unsupported dtype {entry['dtype']}")
    start, end = entry["data_offsets"]
    base = header["__data_start__"]
    arr = np.fromfile(path, dtype=dtype, count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
    arr = arr.reshape(entry["shape"])
    if entry["dtype"] == "BF16":
        arr = (arr.astype(np.uint32) << 16).view(np.float32)
    return arr


def li_lsr_table(embeddings: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """softplus(E w + b) in fp32, float32 [V] (spec section 3, 'computed in fp32')."""
    e = np.asarray(embeddings, dtype=np.float32)
    w = np.asarray(weight, dtype=np.float32).reshape(-1)
    b = np.asarray(bias, dtype=np.float32).reshape(-1)
    if e.ndim != 2 or w.shape != (e.shape[1],) or b.shape != (1,):
        raise CheckpointError(
            f"Li-LSR shapes do not fit: embeddings {e.shape}, projection.weight {w.shape}, projection.bias {b.shape}"
        )
    x = e @ w + b[0]
    # numerically stable softplus: log1p(exp(-|x|)) + max(x, 0)
    return (np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)).astype(np.float32)


def table_from_safetensors(path: str | Path) -> np.ndarray:
    header = read_header(path)
    names = (QUERY_EMBEDDINGS, QUERY_PROJ_WEIGHT, QUERY_PROJ_BIAS)
    missing = [n for n in names if n not in header]
    if missing:
        raise CheckpointError(
            f"{path}: no Li-LSR query encoder: missing {', '.join(missing)} "
            "(the official loader would silently use random embeddings; we refuse)"
        )
    e, w, b = (read_tensor(path, n, header) for n in names)
    if e.shape[0] != VOCAB_SIZE:
        raise CheckpointError(f"{path}: {QUERY_EMBEDDINGS} has shape {list(e.shape)}, expected [{VOCAB_SIZE}, H]")
    return li_lsr_table(e, w, b)


def resolve_files(model: str, files: tuple[str, ...] = (WEIGHTS_FILE, TOKENIZER_FILE),
                  required: tuple[str, ...] = (WEIGHTS_FILE,)) -> dict[str, Path | None]:
    """Local dir, or a Hub id fetched with huggingface_hub (cached). Missing optional files -> None."""
    p = Path(model)
    if p.is_dir():
        return {f: (p / f if (p / f).is_file() else None) for f in files}
    if p.exists() or model.count("/") != 1 or model.startswith((".", "/")):
        raise CheckpointError(f"{model}: not a checkpoint dir (and not a Hub id of the form owner/name)")
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:
        raise CheckpointError(f"{model}: not a local dir, and huggingface_hub is not installed to fetch it") from None
    out: dict[str, Path | None] = {}
    for f in sorted(files, key=lambda f: f not in required):  # required files first: fail fast
        try:
            out[f] = Path(hf_hub_download(model, f))
        except LocalEntryNotFoundError:  # offline and not cached: a subclass of EntryNotFoundError
            if f in required:
                raise CheckpointError(f"{model}: cannot fetch {f} from the Hub (offline, and not in the cache)") from None
            out[f] = None
        except EntryNotFoundError:  # the repo exists but has no such file: optional files may be absent
            out[f] = None
        except Exception as e:  # network, auth, unknown repo: one clear line, no tokens in it
            raise CheckpointError(f"{model}: cannot fetch {f} from the Hub ({type(e).__name__}: {e})") from None
    return out


def query_encoder_from_checkpoint(model: str) -> QueryEncoder:
    """The torch-free Li-LSR query encoder of a checkpoint (dir or Hub id)."""
    files = resolve_files(model)
    weights = files[WEIGHTS_FILE]
    if weights is None:
        raise CheckpointError(f"{model}: no {WEIGHTS_FILE} (only single-file safetensors checkpoints are supported)")
    table = table_from_safetensors(weights)
    enc = QueryEncoder(files[TOKENIZER_FILE], table=table, mode="li_lsr")
    return enc

"""Multi-GPU encoding: one process per GPU (torchrun / accelerate launch), one shard per rank,
merged into ONE encoded dir by rank 0.

    torchrun --nproc-per-node 8 -m vsplade.encoders.neural.distributed PDFS/ --model M --out DIR
    accelerate launch -m vsplade.encoders.neural.distributed PDFS/ --model M --out DIR

Page ownership is crc32(page id) % world size: stable across runs, so a crashed run resumes
(each rank skips the pages its shard dir ``DIR/ranks/rank-NNNN`` already holds, plus those
already merged into DIR) and a different world size still never encodes a page twice. Pages
a rank does not own are skipped before they are rendered. After a barrier, rank 0 appends
every rank dir to DIR (resumable too) and removes them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import Sequence

from ...encoded import EncodedDir, EncodedDirError, EncodedDirWriter
from ...catalog import choose_root, source_key
from ...pages import DEFAULT_DPI, PageFailure, PageReader, discover, file_sha256
from ...pipeline import encoder_info, render_cap

log = logging.getLogger(__name__)
RANKS_DIR = "ranks"


def owner(page_id: str, world: int) -> int:
    return zlib.crc32(page_id.encode()) % world


class _SkipFilter:
    """Set-like `skip_ids` for PageReader: done pages and pages of other ranks."""

    def __init__(self, done: set[str], rank: int, world: int):
        self.done, self.rank, self.world = done, rank, world
        self.foreign = 0

    def __contains__(self, page_id: str) -> bool:
        if owner(page_id, self.world) != self.rank:
            self.foreign += 1
            return True
        return page_id in self.done

    def __bool__(self) -> bool:
        return True


def rank_dir(out: Path, rank: int) -> Path:
    return Path(out) / RANKS_DIR / f"rank-{rank:04d}"


def merged_ids(out: Path) -> set[str]:
    try:
        return set(EncodedDir(out).ids())
    except (EncodedDirError, OSError, ValueError):
        return set()


def encode_rank(inputs: Sequence[str], encoder, out: str | Path, rank: int, world: int, model: str,
                dpi: int = DEFAULT_DPI) -> dict:
    """Encode this rank's pages into its shard dir. Returns a JSON-able summary."""
    out = Path(out)
    info = encoder_info(encoder, model)
    already = merged_ids(out)
    with EncodedDirWriter(rank_dir(out, rank), info) as writer:
        skip = _SkipFilter(writer.done_ids() | already, rank, world)
        # pages named as vsplade.pipeline names them (vsplade.catalog: source keys relative to
        # the inputs' root, ids from key + content hash + page), so shards merge with, and
        # resume, a one-process run of the same inputs
        root = choose_root(inputs)
        files, failures = discover(inputs)
        ident = {}
        for path in files:
            try:
                ident[path] = (source_key(path, root), file_sha256(path))
            except OSError as e:
                failures.append(PageFailure(str(path), None, f"cannot read file ({e.strerror or e})"))
        reader = PageReader(list(ident), dpi=dpi, render=encoder.needs_image, text=encoder.needs_text, skip_ids=skip,
                            identify=ident.__getitem__, max_edge=render_cap(info))
        reader.failures[:0] = failures
        for batch in encoder.encode_stream(reader):
            writer.add(batch)
        summary = writer.close()
    return {"rank": rank, "indexed": summary.indexed, "skipped_done": reader.skipped - skip.foreign,
            "failures": [str(f) for f in reader.failures]}


def merge_ranks(out: str | Path, info: dict) -> dict:
    """Append every rank dir under OUT/ranks to OUT, then remove them."""
    out = Path(out)
    root = out / RANKS_DIR
    dirs = sorted(root.glob("rank-*")) if root.is_dir() else []
    added = 0
    # the writer refuses a non-empty dir that is not an encoded dir: move the rank dirs aside
    staging = out.parent / f".{out.name}.ranks"
    if dirs:
        if staging.exists():
            shutil.rmtree(staging)
        root.rename(staging)
        dirs = sorted(staging.glob("rank-*"))
    elif staging.is_dir():  # a crash during a previous merge
        dirs = sorted(staging.glob("rank-*"))
    with EncodedDirWriter(out, info) as writer:
        done = writer.done_ids()
        for d in dirs:
            for batch in EncodedDir(d).iter_batches():
                keep = [i for i, pid in enumerate(batch.ids) if pid not in done]
                if keep:
                    writer.add(batch.select(keep))
                    added += len(keep)
        summary = writer.close()
    if staging.is_dir():
        shutil.rmtree(staging)
    return {"merged": added, "total": len(EncodedDir(out)), "empty": summary.empty}


def _dist():
    """(rank, world, barrier) from torchrun / accelerate env vars."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return rank, world, lambda: None
    import datetime

    import torch.distributed as dist

    if not dist.is_initialized():
        # gloo: the barrier only has to wait, and works with or without GPUs; long timeout
        # because ranks finish their shards at different times
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=24))
    return rank, world, dist.barrier


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vsplade.encoders.neural.distributed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dpi", type=int, default=DEFAULT_DPI)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--dtype", default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--threshold", type=float, default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from .encoder import VSpladeEncoder

    rank, world, barrier = _dist()
    enc = VSpladeEncoder.from_pretrained(args.model, dtype=args.dtype, batch_size=args.batch_size,
                                         top_k=args.top_k, threshold=args.threshold)
    summary = encode_rank(args.inputs, enc, args.out, rank, world, args.model, dpi=args.dpi)
    print(json.dumps(summary), file=sys.stderr)
    barrier()
    if rank == 0:
        print(json.dumps(merge_ranks(args.out, encoder_info(enc, args.model))))
    barrier()
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Export a trained model: the official checkpoint layout plus the query-side model bundle.

Owns `export_trained`: merge LoRA into a copy of the model, write it with the core
`export_checkpoint` (what `vsplade encode --model DIR` and the official loader read), then
write the torch-free bundle (tokenizer.json + Li-LSR table + vsplade.json) with the core
`write_bundle`. The bundle's table is computed from the exported tensors by the same
function `vsplade search` uses on a checkpoint, so both query paths give identical vectors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vsplade.bundle import write_bundle
from vsplade.encoders.checkpoint_table import table_from_safetensors
from vsplade.encoders.neural.checkpoint import WEIGHTS_FILE, export_checkpoint

from .model import merged_copy


def export_trained(model, out_dir: str | Path, tokenizer_file: str | Path, *, bundle_dir: str | Path | None = None,
                   dtype: torch.dtype = torch.bfloat16, longest_edge: int | None = None) -> dict[str, Path]:
    """`model`: a VSpladeTrainModel or VSpladeModel (LoRA-wrapped or not).

    Writes the checkpoint to `out_dir` and the bundle to `bundle_dir` (default out_dir/bundle).
    """
    vs = getattr(model, "vsplade", model)
    merged = merged_copy(vs).float()
    out = export_checkpoint(merged, out_dir, tokenizer_file, dtype=dtype, longest_edge=longest_edge)
    table = table_from_safetensors(out / WEIGHTS_FILE)
    bundle = write_bundle(
        Path(bundle_dir) if bundle_dir else out / "bundle", table, "li_lsr", tokenizer_path=tokenizer_file,
        encoder={"name": "vsplade", "model": str(out), "dtype": str(dtype).replace("torch.", "")},
    )
    return {"checkpoint": out, "bundle": bundle}

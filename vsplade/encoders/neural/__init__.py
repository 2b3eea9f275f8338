"""The neural V-SPLADE page encoder (extra ``encode``: torch + transformers).

- `model`: `VSpladeModel` (ModernVBertForMaskedLM + `SpladeHead` pooling + Li-LSR query head)
- `checkpoint`: official export layout <-> model, strict `load_checkpoint`, `export_checkpoint`
- `processor`: Idefics3Processor built offline, the encoding prompt, batching/padding
- `encoder`: `VSpladeEncoder` (the `vsplade` DocumentEncoder)
- `distributed`: one shard per rank (torchrun / accelerate), merged into one encoded dir
"""

from .checkpoint import CheckpointError, export_checkpoint, load_checkpoint
from .config import full_size_config, make_config, tiny_config
from .encoder import VSpladeEncoder
from .model import SpladeHead, SpladeOutput, VSpladeModel, build_model
from .processor import PROMPT, build_processor

__all__ = [
    "VSpladeEncoder", "VSpladeModel", "SpladeHead", "SpladeOutput", "build_model", "load_checkpoint",
    "export_checkpoint", "CheckpointError", "full_size_config", "tiny_config", "make_config", "build_processor",
    "PROMPT",
]

"""The neural V-SPLADE page encoder (extra ``encode``: torch + transformers).

- `model`: `VSpladeModel` (ModernVBertForMaskedLM + `SpladeHead` pooling + Li-LSR query head)
- `checkpoint`: official export layout <-> model, strict `load_checkpoint`, `export_checkpoint`
- `processor`: Idefics3Processor built offline, the encoding prompt, batching/padding
- `fastpath`: the fast page path (uint8 tiles, normalised on the device); `pdfrender`: its
  torch-free PDF renderer and geometry (what render worker processes import)
- `encoder`: `VSpladeEncoder` (the `vsplade` DocumentEncoder)
- `distributed`: one shard per rank (torchrun / accelerate), merged into one encoded dir

Names are imported lazily, so `vsplade.encoders.neural.pdfrender` loads without torch.
"""

from importlib import import_module

_NAMES = {
    "CheckpointError": "checkpoint", "export_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "full_size_config": "config", "make_config": "config", "tiny_config": "config",
    "VSpladeEncoder": "encoder",
    "SpladeHead": "model", "SpladeOutput": "model", "VSpladeModel": "model", "build_model": "model",
    "PROMPT": "processor", "build_processor": "processor",
}

__all__ = [
    "VSpladeEncoder", "VSpladeModel", "build_model", "SpladeHead", "SpladeOutput", "load_checkpoint",
    "export_checkpoint", "CheckpointError", "full_size_config", "tiny_config", "make_config", "build_processor",
    "PROMPT",
]


def __getattr__(name):
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

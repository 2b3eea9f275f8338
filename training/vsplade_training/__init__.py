"""vsplade-training: train, caption and evaluate V-SPLADE models (`vsplade-train`).

Modules: data (ColPali / RLHN sets, batch sampler), collator, model (LoRA on the core
VSpladeModel + Li-LSR table), losses, schedule (WSD, FLOPS warm-up), trainer (HF Trainer
subclass), export (official layout + query bundle), recipes (quality / efficient configs),
captions (vLLM and transformers backends, merge-captions), eval (ViDoRe v2 through every
engine), cli.
"""

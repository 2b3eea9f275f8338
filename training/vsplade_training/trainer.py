"""`VSpladeTrainer`: a Hugging Face Trainer with the V-SPLADE schedule, batches and logs.

Owns: the dataloader over `TaskAwareBatchSampler` (homogeneous batches, sharded by
accelerate across ranks, reshuffled per epoch), the WSD learning-rate schedule, the
quadratic FLOPS-weight warm-up driven by the optimizer step, and logging of every loss term,
passage nnz, max weight and training FLOPs averaged over the logging window. Checkpoints and
resume are the Trainer's own (model, optimizer, scheduler, RNG and sampler position), so a
resumed run continues the same schedule. `train_from_config` wires config -> data -> model.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from transformers import Trainer, TrainingArguments

from .collator import TrainCollator
from .data import TaskAwareBatchSampler, TrainDataset, load_any, prepare_image_dataset, sample_rlhn
from .recipes import TrainConfig
from .schedule import flops_weight, wsd_scheduler

log = logging.getLogger(__name__)

LOGGED = ("rank", "flops", "caption_flops", "push_up", "caption_rank", "p_nnz", "p_max", "q_nnz", "flops_qd")


class VSpladeTrainer(Trainer):
    def __init__(self, *args, batch_sampler: TaskAwareBatchSampler, cfg: TrainConfig, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_sampler = batch_sampler
        self.cfg = cfg
        self._sums: dict[str, float] = defaultdict(float)
        self._counts: dict[str, int] = defaultdict(int)

    def get_train_dataloader(self) -> DataLoader:
        dl = DataLoader(
            self.train_dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory and torch.cuda.is_available(),
        )
        # accelerate shards batches round-robin over ranks; the sampler emits each global
        # batch as num_replicas consecutive local batches of one task
        dl = self.accelerator.prepare(dl)
        # accelerate forwards set_epoch only to samplers it knows; ours must reshuffle too
        inner_set_epoch = dl.set_epoch

        def set_epoch(epoch: int) -> None:
            inner_set_epoch(epoch)
            self.batch_sampler.set_epoch(epoch)

        dl.set_epoch = set_epoch
        return dl

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None:
            self.lr_scheduler = wsd_scheduler(optimizer or self.optimizer, num_training_steps,
                                              self.cfg.warmup_ratio, self.cfg.decay_ratio)
        return self.lr_scheduler

    def current_flops_weight(self) -> float:
        return flops_weight(self.state.global_step, self.cfg.flops_weight, self.cfg.flops_warmup_steps)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inner = self.accelerator.unwrap_model(model)
        inner.flops_weight = self.current_flops_weight()
        out = model(**inputs)
        for k in LOGGED:
            if k in out:
                self._sums[k] += float(out[k].detach())
                self._counts[k] += 1
        loss = out["loss"]
        return (loss, out) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:
            for k in LOGGED:
                if self._counts.get(k):
                    logs[f"train_{k}"] = round(self._sums[k] / self._counts[k], 6)
            logs["flops_weight"] = self.current_flops_weight()
            self._sums.clear()
            self._counts.clear()
        super().log(logs, *args, **kwargs)


# TrainConfig's optimisation fields that TrainingArguments takes under the same name, as they are
_SAME_NAME_ARGS = ("output_dir", "gradient_accumulation_steps", "max_steps", "max_grad_norm", "weight_decay", "seed",
                   "bf16", "gradient_checkpointing", "optim", "logging_steps", "save_steps", "save_total_limit",
                   "dataloader_num_workers", "report_to")


def training_arguments(cfg: TrainConfig, **overrides) -> TrainingArguments:
    kw = {name: getattr(cfg, name) for name in _SAME_NAME_ARGS}
    kw.update(
        per_device_train_batch_size=cfg.per_device_batch_size,
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        data_seed=cfg.seed,
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        remove_unused_columns=False,
        label_names=[],
        ddp_find_unused_parameters=False,
    )
    kw.update(overrides)
    return TrainingArguments(**kw)


def build_data(cfg: TrainConfig, world_size: int):
    name = cfg.dataset
    image_ds, report = prepare_image_dataset(
        load_any(cfg.dataset, cfg.dataset_split), name=name, index_column=cfg.index_column,
        caption_column=cfg.caption_column if cfg.caption_terms else None, missing_captions=cfg.missing_captions,
        min_query_chars=cfg.min_query_chars, hard_negatives_column=cfg.hard_negatives_column,
    )
    log.info("%s: %d rows, %d short queries dropped, %d kept", name, report.rows, report.short_queries, report.kept)
    text_ds = None
    if cfg.rlhn_dataset and cfg.text_ratio > 0:
        text_ds = sample_rlhn(load_any(cfg.rlhn_dataset, "train"), name=cfg.rlhn_dataset, rows=cfg.rlhn_rows,
                              seed=cfg.seed, negatives=cfg.num_hard_negatives, min_query_chars=cfg.min_query_chars)
    data = TrainDataset(image_ds, text_ds, caption_column=cfg.caption_column if cfg.caption_terms else None,
                        hard_negatives_column=cfg.hard_negatives_column, num_hard_negatives=cfg.num_hard_negatives,
                        seed=cfg.seed)
    sampler = TaskAwareBatchSampler(data.n_image, data.n_text, cfg.per_device_batch_size, cfg.text_ratio,
                                    num_replicas=world_size, seed=cfg.seed, dataset=data)
    return data, sampler, report


def make_trainer(cfg: TrainConfig, model=None, processor=None, **arg_overrides) -> VSpladeTrainer:
    from vsplade.encoders.neural.config import image_seq_len
    from vsplade.encoders.neural.processor import build_processor

    from .model import build_train_model

    args = training_arguments(cfg, **arg_overrides)
    model = model or build_train_model(cfg)
    if processor is None:
        tok = Path(cfg.model) / "tokenizer.json"
        if not tok.is_file():
            from huggingface_hub import hf_hub_download

            tok = Path(hf_hub_download(cfg.model, "tokenizer.json"))
        cfgm = model.vsplade.config
        processor = build_processor(tok, tile=cfgm.vision_config.image_size, image_seq_len=image_seq_len(cfgm),
                                    longest_edge=cfg.image_longest_edge)
    data, sampler, _ = build_data(cfg, args.world_size)
    collator = TrainCollator(processor, caption_terms=cfg.caption_terms, max_query_tokens=cfg.max_query_tokens,
                             max_passage_tokens=cfg.max_passage_tokens, max_caption_tokens=cfg.max_caption_tokens)
    trainer = VSpladeTrainer(model=model, args=args, train_dataset=data, data_collator=collator,
                             batch_sampler=sampler, cfg=cfg)
    trainer.processor_for_export = processor  # type: ignore[attr-defined]
    return trainer

"""Training configuration: one dataclass, one file per recipe (training/recipes/*.yaml).

Owns: `TrainConfig` (every knob of a run, each one used somewhere; no dead flags),
`load_recipe(name_or_path, overrides)` and its validation. A recipe name (`quality`,
`efficient`) resolves to training/recipes/<name>.yaml; a path loads that file (YAML or JSON).
Overrides are `key=value` strings parsed as YAML scalars (`lr=1e-4`, `zipfian=false`).
Unknown keys are errors naming the file, so a typo never silently trains with a default.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .losses import OVERLAP_TYPES, PUSH_MODES, LossWeights

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
MISSING_CAPTIONS = ("error", "drop")


class RecipeError(ValueError):
    pass


@dataclass
class TrainConfig:
    # --- data (spec section 5, "Data") ---
    dataset: str = ""  # local `datasets` dir (save_to_disk) or Hub id with query/image/caption
    dataset_split: str = "train"
    index_column: str = "index"  # original row index; added from row positions when absent
    caption_column: str = "caption"
    missing_captions: str = "error"  # empty/missing caption in a row: error | drop the row
    hard_negatives_column: str | None = None  # image column (image or list of images) of hard negatives
    num_hard_negatives: int = 1  # per query, taken from hard_negatives_column / RLHN negatives
    min_query_chars: int = 5  # queries of <= this many characters (stripped) are dropped
    rlhn_dataset: str | None = None  # optional RLHN dir or Hub id (query, positive/negative_passages)
    rlhn_rows: int = 300_000  # rows sampled with the seed
    text_ratio: float = 3.0  # text batches per image batch (homogeneous batches)
    max_query_tokens: int = 256
    max_passage_tokens: int = 512  # RLHN passages, text-only
    max_caption_tokens: int = 1024
    image_longest_edge: int | None = None  # page resize before tiling; None = 4 tiles (2048 px at 512 px tiles)
    # --- model ---
    model: str = ""  # ModernVBert backbone: local dir or Hub id
    lora_r: int = 32
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: list[str] = field(default_factory=lambda: ["Wqkv", "Wo", "Wi"])
    head_lora_targets: list[str] = field(default_factory=lambda: ["dense", "decoder"])
    lm_head_full: bool = False  # train the whole MLM head instead of LoRA on it
    # --- losses ---
    temperature: float = 0.1
    flops_weight: float = 0.01  # lambda_p on passages and hard negatives
    flops_warmup_steps: int = 500  # quadratic warm-up of lambda_p, in optimizer steps
    caption_flops_weight: float = 0.005  # lambda_capreg
    push_up_weight: float = 5.0  # lambda_cap
    caption_rank_weight: float = 1.0  # lambda_capsr
    overlap_type: str = "passage"
    overlap_alpha: float = 0.0
    zipfian: bool = True
    tau_push: float = 0.5
    push_mode: str = "logsigmoid_h"
    # --- optimisation ---
    output_dir: str = "runs/vsplade"
    per_device_batch_size: int = 42
    gradient_accumulation_steps: int = 4
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs
    lr: float = 5e-4
    warmup_ratio: float = 0.05
    decay_ratio: float = 0.2  # WSD: linear decay to 0 over the last decay_ratio * T steps
    max_grad_norm: float = 5.0
    weight_decay: float = 0.01
    seed: int = 1
    bf16: bool = True
    gradient_checkpointing: bool = True
    optim: str = "adamw_torch_fused"
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = 3
    dataloader_num_workers: int = 4
    report_to: list[str] = field(default_factory=lambda: ["none"])

    @property
    def caption_terms(self) -> bool:
        """Caption-gated terms are on when any of their weights is non-zero."""
        return bool(self.push_up_weight or self.caption_flops_weight or self.caption_rank_weight)

    @property
    def loss_weights(self) -> LossWeights:
        return LossWeights(
            flops=self.flops_weight,
            caption_flops=self.caption_flops_weight,
            push_up=self.push_up_weight,
            caption_rank=self.caption_rank_weight,
        )

    def validate(self, where: str = "config") -> "TrainConfig":
        def bad(msg):
            raise RecipeError(f"{where}: {msg}")

        if self.overlap_type not in OVERLAP_TYPES:
            bad(f"overlap_type must be one of {OVERLAP_TYPES}, got {self.overlap_type!r}")
        if self.push_mode not in PUSH_MODES:
            bad(f"push_mode must be one of {PUSH_MODES}, got {self.push_mode!r}")
        if self.missing_captions not in MISSING_CAPTIONS:
            bad(f"missing_captions must be one of {MISSING_CAPTIONS}, got {self.missing_captions!r}")
        if self.temperature <= 0:
            bad(f"temperature must be > 0, got {self.temperature}")
        if self.zipfian and self.tau_push <= 0:
            bad(f"tau_push must be > 0, got {self.tau_push}")
        if self.per_device_batch_size < 1 or self.gradient_accumulation_steps < 1:
            bad("per_device_batch_size and gradient_accumulation_steps must be >= 1")
        if self.text_ratio < 0:
            bad(f"text_ratio must be >= 0, got {self.text_ratio}")
        if not (0 <= self.warmup_ratio <= 1 and 0 <= self.decay_ratio <= 1 and self.warmup_ratio + self.decay_ratio <= 1):
            bad(f"warmup_ratio {self.warmup_ratio} + decay_ratio {self.decay_ratio} must lie in [0, 1]")
        if self.lora_r < 0:
            bad(f"lora_r must be >= 0, got {self.lora_r}")
        if self.num_hard_negatives < 0:
            bad("num_hard_negatives must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def recipe_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml", ".json") or p.exists():
        if not p.is_file():
            raise RecipeError(f"{p}: recipe file not found")
        return p
    cand = RECIPES_DIR / f"{name_or_path}.yaml"
    if not cand.is_file():
        known = sorted(x.stem for x in RECIPES_DIR.glob("*.yaml"))
        raise RecipeError(f"unknown recipe {name_or_path!r}; known: {known} (or give a .yaml/.json path)")
    return cand


def _read(path: Path) -> dict[str, Any]:
    import yaml

    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as e:
        raise RecipeError(f"{path}: cannot parse ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of keys to values")
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise RecipeError(f"override {item!r} is not key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v) if v.strip() else None
    return out


def build_config(values: dict[str, Any], where: str) -> TrainConfig:
    unknown = sorted(set(values) - set(_FIELDS))
    if unknown:
        raise RecipeError(f"{where}: unknown keys {unknown}")
    cfg = TrainConfig()
    for k, v in values.items():
        default = getattr(cfg, k)
        # YAML reads 5e-4 as a string; coerce to the field's numeric type.
        if isinstance(default, float) and isinstance(v, (int, str)) and not isinstance(v, bool):
            try:
                v = float(v)
            except ValueError:
                raise RecipeError(f"{where}: {k} must be a number, got {v!r}") from None
        elif isinstance(default, bool) and not isinstance(v, bool):
            raise RecipeError(f"{where}: {k} must be true or false, got {v!r}")
        elif isinstance(default, int) and not isinstance(default, bool) and not isinstance(v, int):
            raise RecipeError(f"{where}: {k} must be an integer, got {v!r}")
        setattr(cfg, k, v)
    return cfg.validate(where)


def load_recipe(name_or_path: str | Path, overrides: dict[str, Any] | Iterable[str] | None = None) -> TrainConfig:
    path = recipe_path(name_or_path)
    values = _read(path)
    values.pop("recipe", None)  # informational name
    if overrides:
        values.update(overrides if isinstance(overrides, dict) else parse_overrides(overrides))
    return build_config(values, str(path))

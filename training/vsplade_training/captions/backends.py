"""Caption backends: `transformers` generate (any VLM, any machine) and vLLM (GPU, batched).

Both take PIL images and return [(caption, num_tokens)] with greedy decoding, the official
repetition penalty 1.1 and max_new_tokens 4096 by default. vLLM is imported only when its
backend is built (optional extra `captions`); tests never import it.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from .prompt import DOCUMENT_PROMPT, QWEN_STOP, chat_messages, qwen_raw_prompt

log = logging.getLogger(__name__)

BACKENDS = ("transformers", "vllm")
DEFAULT_MAX_PIXELS = 28 * 28 * 26000  # official vLLM mm_processor_kwargs


def _is_qwen_vl(tokenizer) -> bool:
    vocab = tokenizer.get_vocab()
    return "<|image_pad|>" in vocab and "<|vision_start|>" in vocab


class TransformersCaptioner:
    """`AutoModelForImageTextToText.generate`, batched with left padding; slow but portable."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str = "auto",
        max_new_tokens: int = 4096,
        repetition_penalty: float = 1.1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        instruction: str = DOCUMENT_PROMPT,
        trust_remote_code: bool = False,
    ):
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
        tok = self.processor.tokenizer
        tok.padding_side = "left"  # decoder-only generation continues from the right edge
        if max_pixels and hasattr(self.processor.image_processor, "max_pixels"):
            self.processor.image_processor.max_pixels = max_pixels
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        self.model = AutoModelForImageTextToText.from_pretrained(
            model, dtype=torch_dtype, trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        if _is_qwen_vl(tok):
            self.prompt = qwen_raw_prompt(instruction)
        else:
            self.prompt = self.processor.apply_chat_template(chat_messages(instruction), add_generation_prompt=True)
        self.max_new_tokens = max_new_tokens
        self.repetition_penalty = repetition_penalty
        stop = tok.convert_tokens_to_ids(QWEN_STOP) if QWEN_STOP in tok.get_vocab() else None
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = sorted({*eos, *([stop] if stop is not None else []), *([tok.eos_token_id] if tok.eos_token_id is not None else [])})
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (self.eos_ids[0] if self.eos_ids else 0)

    def generate(self, images: Sequence[Any]) -> list[tuple[str, int]]:
        import torch

        batch = self.processor(
            text=[self.prompt] * len(images),
            images=list(images),
            return_tensors="pt",
            padding=True,
        ).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **batch,
                do_sample=False,
                max_new_tokens=self.max_new_tokens,
                repetition_penalty=self.repetition_penalty,
                eos_token_id=self.eos_ids or None,
                pad_token_id=self.pad_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        results = []
        for row in new.tolist():
            # count generated tokens up to and including the first stop token, like vLLM's token_ids
            n = len(row)
            for j, t in enumerate(row):
                if t in self.eos_ids:
                    n = j + 1
                    break
            text = self.processor.tokenizer.decode(row[:n], skip_special_tokens=True)
            results.append((text.strip(), n))
        return results


class VLLMCaptioner:
    """vLLM with the official settings: greedy, max_tokens 4096, repetition penalty 1.1,
    stop at <|im_end|>, max_model_len 32768, max_pixels 28*28*26000."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel: int = 1,
        max_new_tokens: int = 4096,
        repetition_penalty: float = 1.1,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_model_len: int = 32768,
        gpu_memory_utilization: float = 0.9,
        instruction: str = DOCUMENT_PROMPT,
        trust_remote_code: bool = True,
    ):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise RuntimeError("the vllm backend needs `pip install vsplade-training[captions]` on a GPU machine") from e
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tensor_parallel,
            trust_remote_code=trust_remote_code,
            max_model_len=max_model_len,
            mm_processor_kwargs={"max_pixels": max_pixels} if max_pixels else None,
            gpu_memory_utilization=gpu_memory_utilization,
        )
        self.params = SamplingParams(
            max_tokens=max_new_tokens, temperature=0.0, repetition_penalty=repetition_penalty, stop=[QWEN_STOP]
        )
        self.prompt = qwen_raw_prompt(instruction)

    def generate(self, images: Sequence[Any]) -> list[tuple[str, int]]:
        prompts = [{"prompt": self.prompt, "multi_modal_data": {"image": im}} for im in images]
        outs = self.llm.generate(prompts, self.params)
        return [(o.outputs[0].text.strip(), len(o.outputs[0].token_ids)) for o in outs]


def make_backend(name: str, model: str, **options):
    if name == "transformers":
        return TransformersCaptioner(model, **options)
    if name == "vllm":
        return VLLMCaptioner(model, **options)
    raise ValueError(f"caption backend must be one of {BACKENDS}, got {name!r}")

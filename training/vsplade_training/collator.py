"""Items of data.TrainDataset -> tensors for VSpladeTrainModel (spec section 5, "Collator").

Queries: tokenized without special tokens (for Li-LSR this equals the official
`query + <end_of_utterance> x 10` with special tokens: the suffix ids are >= 50368 and
[CLS]/[SEP] are masked). Images: the core processor's features/collate (the encoding prompt,
left padding), so training sees exactly what `vsplade encode` feeds the model. Captions and
RLHN passages: text-only, with special tokens, truncated at 1024 / 512 tokens.
Keys: query_*, passage_*, hard_neg_* (when the batch has hard negatives), caption_* (image
batches with caption terms on), all torch tensors.
"""

from __future__ import annotations

from typing import Any

from vsplade.encoders.neural.processor import PROMPT, collate, features

from .data import IMAGE


class TrainCollator:
    def __init__(self, processor, *, caption_terms: bool, max_query_tokens: int = 256, max_passage_tokens: int = 512,
                 max_caption_tokens: int = 1024, prompt: str = PROMPT):
        self.processor = processor
        self.tok = processor.tokenizer
        self.pad_id = self.tok.pad_token_id
        self.caption_terms = caption_terms
        self.max_query_tokens = max_query_tokens
        self.max_passage_tokens = max_passage_tokens
        self.max_caption_tokens = max_caption_tokens
        self.prompt = prompt

    def _text(self, texts: list[str], max_len: int, special: bool, prefix: str) -> dict[str, Any]:
        enc = self.tok(texts, add_special_tokens=special, padding=True, truncation=True, max_length=max_len,
                       return_tensors="pt")
        return {f"{prefix}_input_ids": enc["input_ids"], f"{prefix}_attention_mask": enc["attention_mask"]}

    def _images(self, images: list, prefix: str) -> dict[str, Any]:
        b = collate([features(self.processor, im, self.prompt) for im in images], self.pad_id)
        return {f"{prefix}_{k}": v for k, v in b.items()}

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        tasks = {it["task"] for it in items}
        if len(tasks) != 1:
            raise ValueError(f"a batch mixes tasks {sorted(tasks)}: use TaskAwareBatchSampler")
        out = self._text([it["query"] for it in items], self.max_query_tokens, False, "query")
        if tasks == {IMAGE}:
            out.update(self._images([it["image"] for it in items], "passage"))
            negs = [im for it in items for im in it.get("hard_negatives") or []]
            if negs:
                out.update(self._images(negs, "hard_neg"))
            if self.caption_terms:
                caps = [it.get("caption") for it in items]
                if all(isinstance(c, str) and c.strip() for c in caps):
                    out.update(self._text(caps, self.max_caption_tokens, True, "caption"))
        else:
            out.update(self._text([it["positive"] for it in items], self.max_passage_tokens, True, "passage"))
            negs = [n for it in items for n in it["negatives"]]
            if negs:
                out.update(self._text(negs, self.max_passage_tokens, True, "hard_neg"))
        return out

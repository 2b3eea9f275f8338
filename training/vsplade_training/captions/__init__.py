"""Caption generation for caption-gated training (spec section 6) and the merge step.

- prompt.py: the official document prompt and the raw Qwen chat string;
- shards.py: contiguous shards and resumable `caption_{start:06d}.jsonl` files;
- backends.py: vLLM (GPU, batched) and transformers generate (any VLM, any machine);
- run.py: caption one shard of a dataset with a backend;
- merge.py: join caption files into the training set by original row index.
"""

from .merge import MergeReport, merge_captions
from .prompt import DOCUMENT_PROMPT, qwen_raw_prompt
from .run import caption_shard
from .shards import read_captions, shard_path, shard_range

__all__ = [
    "DOCUMENT_PROMPT",
    "MergeReport",
    "caption_shard",
    "merge_captions",
    "qwen_raw_prompt",
    "read_captions",
    "shard_path",
    "shard_range",
]

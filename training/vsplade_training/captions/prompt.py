"""The captioning prompt of the official pipeline (spec section 6).

`qwen_raw_prompt` is the raw Qwen chat string the official vLLM script sends: one user turn
with the image placeholder followed by the instruction, then the assistant header; no system
turn. Models whose processor knows `<|image_pad|>` get exactly this string; other VLMs get
the same instruction through their own chat template.
"""

DOCUMENT_PROMPT = (
    "You are an assistant specialized in document analysis.\n"
    "Given a table or a figure, provide a detailed summary\n"
    "(maximum 3000 characters).\n\n"
    "Your summary should be qualitative and not quantitative.\n\n"
    "Here is the table/figure:\n"
    "Answer ONLY with the caption."
)

QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN_STOP = "<|im_end|>"


def qwen_raw_prompt(instruction: str = DOCUMENT_PROMPT) -> str:
    return f"<|im_start|>user\n{QWEN_IMAGE}{instruction}{QWEN_STOP}\n<|im_start|>assistant\n"


def chat_messages(instruction: str = DOCUMENT_PROMPT) -> list[dict]:
    """The same turn as chat-template messages, for VLMs that are not Qwen-VL."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]

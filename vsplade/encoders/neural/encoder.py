"""`VSpladeEncoder`: pages -> V-SPLADE sparse vectors (the `vsplade` document encoder).

Owns device / dtype choice (bf16 on GPU, fp32 on CPU), sorted-by-size batching (pages of a
window are grouped by tile count, then put back in input order), the background pipeline
(one thread pulls pages from the reader; a pool of threads prepares them; PIL, pdfium and the
tokenizer release the GIL), write-time pruning and the `info()` that encoded dirs and indexes
record.

Two page paths (`page_path`, recorded in `info()`):
- "fast" (default, `fastpath`): uint8 tiles on the host, normalised on the device. PDF pages are
  rendered by the encoder itself straight at the model's size (so `needs_image` is False and the
  reader only lists and checks pages), in the one thread that iterates the reader (pdfium is not
  thread-safe); image files are decoded (by `PageReader`, same checks and conversions) and
  resized in the worker threads. Pages that arrive with an image use that image. Image pages
  give the reference's pixel values bit for bit; PDF pages differ from the reference by
  rendering at the target size instead of resampling a 144-dpi raster.
- "reference": the Idefics3 processor on the page image the reader rendered (144 dpi for PDFs).
A page the fast path cannot render or decode is skipped by `encode_stream` and named in
`warnings` / `failures` (the reader would have done so when rendering); `encode` raises.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from ...pages import Page, PageFailure, PageReader
from ...query import QueryEncoder
from ...sparse import SparseBatch
from ...vocab import VOCAB_SIZE
from ..base import DocumentEncoder
from ..checkpoint_table import TOKENIZER_FILE, WEIGHTS_FILE, li_lsr_table, query_encoder_from_checkpoint
from .checkpoint import PREPROCESSOR_FILE, PROCESSOR_FILE, file_sha256, load_checkpoint
from .config import PAD_ID, image_seq_len
from .fastpath import FastFeatures, FastPath, PdfCache, collate_fast, to_model_inputs
from .model import VSpladeModel
from .processor import PROMPT, PageFeatures, collate, features, processor_from_files

log = logging.getLogger(__name__)

_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
           "fp32": torch.float32, "float32": torch.float32}
_DONE = object()
PAGE_PATHS = ("fast", "reference")


def _file(page: Page) -> str:
    """The local file a page was read from (`path` when the reader names sources itself)."""
    return getattr(page, "path", "") or page.source


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    if torch.cuda.is_available():
        rank = int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device(f"cuda:{rank % torch.cuda.device_count()}")
    return torch.device("cpu")


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        return _DTYPES[dtype]
    return torch.bfloat16 if device.type == "cuda" else torch.float32


class VSpladeEncoder(DocumentEncoder):
    name = "vsplade"
    needs_image = True
    batch_size = 8

    def __init__(self, model: VSpladeModel, processor, model_id: str, *, weights_sha256: str = "",
                 tokenizer_file: str | Path | None = None, checkpoint_files: dict | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 8, top_k: int | None = None,
                 threshold: float | None = None, workers: int | None = None, window_batches: int = 4,
                 prompt: str = PROMPT, page_path: str = "fast", render_workers: int | None = None):
        if page_path not in PAGE_PATHS:
            raise ValueError(f"page_path must be one of {PAGE_PATHS}, got {page_path!r}")
        if top_k is not None and top_k <= 0:
            raise ValueError(f"top_k must be positive, got {top_k}")
        if threshold is not None and threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.model_id = model_id
        self.weights_sha256 = weights_sha256
        self.tokenizer_file = Path(tokenizer_file) if tokenizer_file else None
        self.checkpoint_files = checkpoint_files or {}
        self.batch_size = batch_size
        self.top_k = top_k
        self.threshold = threshold
        self.workers = workers or max(1, min(8, (os.cpu_count() or 2) - 1))
        self.window_batches = window_batches
        self.prompt = prompt
        self.pad_id = processor.tokenizer.pad_token_id if processor.tokenizer.pad_token_id is not None else PAD_ID
        self._query: QueryEncoder | None = None
        self.timings = {"preprocess_s": 0.0, "forward_s": 0.0, "to_sparse_s": 0.0, "wait_s": 0.0}
        self.page_path = page_path
        # image resizes go to the device only when the model runs on CUDA: replayed on a CPU
        # they cost ~25x PIL (one gather per filter tap), even on a box that has a GPU elsewhere
        resize_on_device = None if self.device.type == "cuda" else False
        self.fast = FastPath(processor, prompt, device_resize=resize_on_device) if page_path == "fast" else None
        # fast path: the encoder renders PDF pages itself, so the reader must not
        self.needs_image = page_path == "reference"
        self._pdfs = PdfCache()
        # PDF rendering: pdfium is not thread-safe, so more than one core of it needs processes.
        # None: none on the CPU (the model is the bottleneck there), half the cores on CUDA.
        if render_workers is None:
            render_workers = 0 if self.device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) // 2))
        if render_workers < 0:
            raise ValueError(f"render_workers must be >= 0, got {render_workers}")
        self.render_workers = render_workers if self.fast is not None else 0
        self._render_pool = None
        self._kinds: dict[str, bool] = {}
        self.warnings: list[str] = []
        self.failures: list[PageFailure] = []

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str, device: str | None = None, dtype: str | torch.dtype | None = None,
                        batch_size: int = 8, top_k: int | None = None, threshold: float | None = None,
                        workers: int | None = None, **options: Any) -> "VSpladeEncoder":
        dev = pick_device(device)
        dt = pick_dtype(dtype, dev)
        net, files = load_checkpoint(model, dtype=dt)
        tok = files.get(TOKENIZER_FILE)
        if tok is None:
            raise ValueError(f"{model}: no {TOKENIZER_FILE}; the processor needs the checkpoint's tokenizer")
        processor = processor_from_files(tok, files.get(PREPROCESSOR_FILE), files.get(PROCESSOR_FILE),
                                         tile=net.config.vision_config.image_size,
                                         image_seq_len=image_seq_len(net.config))
        if processor.image_token_id != net.config.image_token_id:
            raise ValueError(f"{model}: tokenizer <image> id {processor.image_token_id} != config image_token_id "
                             f"{net.config.image_token_id}")
        return cls(net, processor, model, weights_sha256=file_sha256(files[WEIGHTS_FILE]), tokenizer_file=tok,
                   checkpoint_files=files, device=dev, batch_size=batch_size, top_k=top_k, threshold=threshold,
                   workers=workers, **options)

    # -- description ---------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        ip = self.processor.image_processor
        return {
            "name": self.name,
            "model": self.model_id,
            "weights_sha256": self.weights_sha256,
            "prompt": self.prompt,
            "longest_edge": ip.size["longest_edge"] if isinstance(ip.size, dict) else ip.size.longest_edge,
            "tile": ip.max_image_size["longest_edge"],
            "resample": int(ip.resample),
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "page_path": self.page_path,
            "top_k": self.top_k,
            "threshold": self.threshold,
            "vocab_size": VOCAB_SIZE,
        }

    def query_encoder(self) -> QueryEncoder:
        if self._query is None:
            if self.checkpoint_files.get(WEIGHTS_FILE):
                # the same torch-free computation that `vsplade search` runs on the checkpoint
                self._query = query_encoder_from_checkpoint(self.model_id)
            else:
                qh = self.model.query_head
                table = li_lsr_table(qh.embeddings.weight.float().cpu().numpy(),
                                     qh.projection.weight.float().detach().cpu().numpy(),
                                     qh.projection.bias.float().detach().cpu().numpy())
                self._query = QueryEncoder(self.tokenizer_file, table=table, mode="li_lsr")
        return self._query

    # -- encoding -----------------------------------------------------------------------
    def page_features(self, page: Page) -> PageFeatures | FastFeatures:
        """The model inputs of one page, on the host. Fast path: a PDF page without an image
        is rendered here, so call this from the thread that reads pages (pdfium)."""
        if self.fast is None:
            if page.image is None:
                raise ValueError(f"page {page.id} ({page.source} page {page.page_no}): no image was rendered")
            return features(self.processor, page.image, self.prompt)
        if page.image is not None:
            return self.fast.from_image(page.image)
        try:
            if self._is_pdf(_file(page)):
                return self.fast.from_pdf(self._pdfs, _file(page), page.page_no)
            image = self._decode(page)
        except Exception as e:  # pdfium, Pillow and the file system raise many types
            raise ValueError(f"page {page.id} ({page.source} page {page.page_no}): cannot render: "
                             f"{type(e).__name__}: {e}") from e
        return self.fast.from_image(image)

    def _renders_here(self, page: Page) -> bool:
        """True for pages whose features must be made in the reading thread (PDF renders)."""
        if self.fast is None or page.image is not None:
            return False
        try:
            return self._is_pdf(_file(page))
        except OSError:
            return False  # page_features names the page and the error

    def _is_pdf(self, source: str) -> bool:
        kind = self._kinds.get(source)
        if kind is None:
            with open(source, "rb") as f:
                kind = f.read(4) == b"%PDF"  # what vsplade.pages sniffs
            if len(self._kinds) > 1024:
                self._kinds.clear()
            self._kinds[source] = kind
        return kind

    def _decode(self, page: Page):
        """An image file's page decoded as the reader would decode it (checks, modes, frames)."""
        reader = PageReader([_file(page)], render=True, text=False)
        found = None
        for p in reader:
            if p.page_no == page.page_no:
                found = p
                break
        self.warnings.extend(reader.warnings)
        if found is None or found.image is None:
            why = "; ".join(str(f) for f in reader.failures) or "page not found"
            raise ValueError(why)
        return found.image

    def _renderers(self):
        if self._render_pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: no fork of a process holding torch / CUDA / threads; workers import only
            # vsplade.encoders.neural.pdfrender (numpy, pypdfium2)
            self._render_pool = ProcessPoolExecutor(self.render_workers, mp_context=multiprocessing.get_context("spawn"))
        return self._render_pool

    def close(self) -> None:
        """Stop the render worker processes (if any); the encoder stays usable."""
        if self._render_pool is not None:
            from .pdfrender import remove_leftovers

            self._render_pool.shutdown(wait=True, cancel_futures=True)
            self._render_pool = None
            remove_leftovers(os.getpid())

    def _render_in_worker(self, page: Page) -> Future:
        from .pdfrender import receive, render_job

        fp = self.fast
        assert fp is not None
        out: Future = Future()
        proc = self._renderers().submit(render_job, _file(page), page.page_no, fp.longest_edge, fp.tile, fp.max_edge,
                                        os.getpid())

        def done(f: Future) -> None:
            try:
                out.set_result(fp.from_rendered(receive(f.result())))
            except Exception as e:
                out.set_exception(ValueError(f"page {page.id} ({page.source} page {page.page_no}): cannot render: "
                                             f"{type(e).__name__}: {e}"))

        proc.add_done_callback(done)
        return out

    def _submit(self, pool: ThreadPoolExecutor, page: Page) -> Future:
        """page_features in the thread pool; PDF renders in the render processes, or right
        here (the reading thread) without them."""
        if not self._renders_here(page):
            return pool.submit(self.page_features, page)
        if self.render_workers:
            return self._render_in_worker(page)
        fut: Future = Future()
        try:
            fut.set_result(self.page_features(page))
        except Exception as e:
            fut.set_exception(e)
        return fut

    @torch.inference_mode()
    def forward(self, items: list[PageFeatures]) -> np.ndarray:
        """Dense float32 [len(items), V] for pages of one batch."""
        dev = self.device
        if isinstance(items[0], FastFeatures):
            assert self.fast is not None
            inputs = to_model_inputs(self.fast.lut_on(dev), collate_fast(items, self.pad_id, dev), dev,
                                     self.model.dtype)
            out = self.model(inputs["input_ids"], inputs["attention_mask"], inputs["pixel_values"],
                             inputs["pixel_attention_mask"])
            return out.vector.float().cpu().numpy()
        batch = collate(items, self.pad_id)
        nb = dev.type == "cuda"
        pix = batch["pixel_values"].to(dev, dtype=self.model.dtype, non_blocking=nb)
        out = self.model(batch["input_ids"].to(dev), batch["attention_mask"].to(dev), pix,
                         batch["pixel_attention_mask"].to(dev))
        return out.vector.float().cpu().numpy()

    def _to_sparse(self, dense: np.ndarray) -> sp.csr_matrix:
        if self.threshold is not None:
            dense = np.where(dense >= self.threshold, dense, 0.0).astype(np.float32)
        if self.top_k is not None and dense.shape[1] > self.top_k:
            cut = np.partition(dense, -self.top_k, axis=1)[:, -self.top_k][:, None]
            keep = dense >= cut
            # ties at the cut could keep more than k: keep the first k by id among them
            over = keep.sum(1) > self.top_k
            for r in np.nonzero(over)[0]:
                idx = np.argsort(-dense[r], kind="stable")[: self.top_k]
                keep[r] = False
                keep[r, idx] = True
            dense = np.where(keep, dense, 0.0).astype(np.float32)
        m = sp.csr_matrix(dense)
        m.eliminate_zeros()
        return m

    def _encode_window(self, pages: list[Page], feats: list[PageFeatures]) -> SparseBatch:
        import time

        order = sorted(range(len(pages)), key=lambda i: (feats[i].num_tiles, feats[i].seq_len))
        rows: list[np.ndarray | None] = [None] * len(pages)
        for s in range(0, len(order), self.batch_size):
            chunk = order[s : s + self.batch_size]
            t = time.perf_counter()
            dense = self.forward([feats[i] for i in chunk])
            self.timings["forward_s"] += time.perf_counter() - t
            for j, i in enumerate(chunk):
                rows[i] = dense[j]
        t = time.perf_counter()
        matrix = self._to_sparse(np.stack(rows))  # type: ignore[arg-type]
        self.timings["to_sparse_s"] += time.perf_counter() - t
        return SparseBatch(matrix, [p.id for p in pages], [p.meta() for p in pages])

    def encode(self, pages: Sequence[Page]) -> SparseBatch:
        import time

        pages = list(pages)
        if not pages:
            return SparseBatch.empty()
        t = time.perf_counter()
        try:
            with ThreadPoolExecutor(self.workers) as pool:
                feats = [f.result() for f in [self._submit(pool, p) for p in pages]]
        finally:
            self._pdfs.close()
        self.timings["preprocess_s"] += time.perf_counter() - t
        return self._encode_window(pages, feats)

    def _skip_failed(self, pages: list[Page], futures: list[Future]) -> tuple[list[Page], list]:
        """Fast path: a page that could not be rendered or decoded is named and skipped, as the
        reader does with pages it cannot render; other errors propagate."""
        keep_pages, feats = [], []
        for page, fut in zip(pages, futures):
            try:
                feats.append(fut.result())
                keep_pages.append(page)
            except Exception as e:
                if self.fast is None or page.image is not None:
                    raise
                msg = str(e)
                self.failures.append(PageFailure(page.source, page.page_no, msg))
                self.warnings.append(f"skipped {msg}")
                log.warning("skipped %s", msg)
        return keep_pages, feats

    def encode_stream(self, pages: Iterable[Page], batch_size: int | None = None) -> Iterator[SparseBatch]:
        """Background pipeline: reading/rendering and preprocessing run ahead of the model by
        up to two windows, so the accelerator does not wait for the CPU side."""
        import time

        if batch_size:
            self.batch_size = batch_size
        window = self.batch_size * self.window_batches
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce():
            try:
                with ThreadPoolExecutor(self.workers) as pool:
                    buf: list[Page] = []
                    for page in pages:
                        if stop.is_set():
                            return
                        buf.append(page)
                        if len(buf) >= window:
                            q.put((buf, [self._submit(pool, p) for p in buf]))
                            buf = []
                    if buf:
                        q.put((buf, [self._submit(pool, p) for p in buf]))
                q.put(_DONE)
            except BaseException as e:  # surfaced in the consumer, with its traceback
                q.put(e)
            finally:
                self._pdfs.close()  # in the thread that rendered

        thread = threading.Thread(target=produce, name="vsplade-pages", daemon=True)
        thread.start()
        try:
            while True:
                t = time.perf_counter()
                item = q.get()
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                win_pages, futures = item
                win_pages, feats = self._skip_failed(win_pages, futures)
                self.timings["wait_s"] += time.perf_counter() - t
                if win_pages:
                    yield self._encode_window(win_pages, feats)
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    q.get_nowait()
                except queue.Empty:
                    thread.join(0.05)

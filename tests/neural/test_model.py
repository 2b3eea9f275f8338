"""The SPLADE head: chunked pooling equals the plain formula; pads, specials, h_max."""

import math

import pytest
import torch

from vsplade.encoders.neural.model import SCALE, SpladeHead
from vsplade.encoders.neural.processor import collate, features
from vsplade.vocab import SPECIAL_IDS, VOCAB_SIZE


def reference(model, batch):
    """Spec section 2 written out: full [B, L, V] logits, log1p(relu), max over mask=1."""
    with torch.no_grad():
        hidden = model.hidden_states(**batch)
        h = model.mlm.lm_head(model.mlm.projection_head(hidden)) * (768 ** -0.25)
        act = torch.log1p(torch.relu(h))
        act = act.masked_fill(batch["attention_mask"][..., None] == 0, 0.0)
        w = act.max(dim=1).values
        w[:, list(SPECIAL_IDS)] = 0
        hmax = h.masked_fill(batch["attention_mask"][..., None] == 0, -1e9).max(dim=1).values
    return w, hmax


@pytest.fixture(scope="module")
def batch(tiny_processor, images):
    return collate([features(tiny_processor, im) for im in images[:3]], pad_id=50283)


def test_scale_is_768_to_the_minus_quarter():
    assert SCALE == pytest.approx(1 / math.sqrt(math.sqrt(768)))
    assert SCALE == pytest.approx(0.189959, abs=1e-6)


def test_pooling_equals_the_formula_with_and_without_chunking(tiny_model, batch):
    want, want_hmax = reference(tiny_model, batch)
    assert batch["attention_mask"].min() == 0, "the batch must contain left padding"
    with torch.no_grad():
        out = tiny_model(**batch, return_h_max=True)
        old = tiny_model.pool.chunk_elements
        try:
            tiny_model.pool.chunk_elements = 3 * VOCAB_SIZE * 7  # 7 positions per chunk: many chunks
            chunked = tiny_model(**batch, return_h_max=True)
        finally:
            tiny_model.pool.chunk_elements = old
    assert out.vector.shape == (3, VOCAB_SIZE)
    torch.testing.assert_close(out.vector, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.vector, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(chunked.h_max, want_hmax, rtol=1e-5, atol=1e-5)
    assert (out.vector >= 0).all()
    assert (out.vector[:, list(SPECIAL_IDS)] == 0).all()
    # h_max carries no special mask; the fixture's spread makes both signs occur
    assert (out.h_max > 0).any() and (out.h_max <= 0).any()
    assert ((out.vector > 0) == ((out.h_max > 0) & tiny_model.pool.keep_mask)).all()


def test_pads_never_contribute():
    head = SpladeHead(vocab_size=6, special_ids=(5,))
    hidden = torch.tensor([[[100.0], [1.0], [2.0]]])  # position 0 is a pad with a huge logit
    mask = torch.tensor([[0, 1, 1]])
    out = head(hidden, mask, lambda h: h.repeat(1, 1, 6) / head.scale, return_h_max=True)
    assert out.h_max[0, 0].item() == pytest.approx(2.0)
    assert out.vector[0, 0].item() == pytest.approx(math.log(3.0))
    assert out.vector[0, 5].item() == 0.0


def test_a_page_alone_equals_the_page_in_a_padded_batch(tiny_model, tiny_processor, images):
    # RoPE is relative, so left padding (shifted absolute positions) must not change a vector
    feats = [features(tiny_processor, im) for im in images[:2]]
    with torch.no_grad():
        together = tiny_model(**collate(feats, 50283)).vector
        alone = tiny_model(**collate(feats[1:], 50283)).vector
    assert feats[0].seq_len != feats[1].seq_len
    torch.testing.assert_close(together[1], alone[0], rtol=1e-4, atol=1e-5)


def test_query_head_table_is_softplus_of_projected_embeddings(tiny_model):
    qh = tiny_model.query_head
    v = 12345
    with torch.no_grad():
        e = qh.embeddings.weight[v]
        manual = math.log1p(math.exp(float(e @ qh.projection.weight[0] + qh.projection.bias[0])))
        got = qh.table()[v].item()
    assert got == pytest.approx(manual, rel=1e-5)
    # spec: E is a copy of the backbone's first V input-embedding rows
    emb = tiny_model.mlm.model.text_model.embeddings.tok_embeddings.weight
    assert emb.shape[0] == VOCAB_SIZE + 40
    assert torch.equal(qh.embeddings.weight, emb[:VOCAB_SIZE])

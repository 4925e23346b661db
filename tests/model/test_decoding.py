"""Decoder: KV-cache decoding equals teacher forcing, constrained decoding, packing masks,
determinism, and that decode_step traces without data-dependent control flow."""

from __future__ import annotations

import pytest
import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs

BOS = 1471  # any id works; the tokenizer's <bos> in the byte vocabulary


def _step_through(model, enc, dec_tokens):
    """Logits for every position by decode_step with a growing cache: (B, Ld, V)."""
    b, ld = dec_tokens.shape
    cross_k, cross_v = model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
    self_k = self_v = model.empty_cache(b)
    out = []
    for i in range(ld):
        pos = torch.full((b,), i, dtype=torch.int64)
        logits, self_k, self_v = model.decode_step(
            dec_tokens[:, i : i + 1], pos, self_k, self_v, cross_k, cross_v, enc.mask
        )
        assert self_k.shape == (
            model.cfg.n_dec_layers,
            b,
            model.cfg.n_heads,
            i + 1,
            model.cfg.head_dim,
        )
        out.append(logits)
    return torch.stack(out, dim=1)


@torch.no_grad()
def test_cached_decoding_matches_the_full_forward_pass(tiny_model, tiny_inputs):
    tiny_inputs.token_mask[1, 5:] = False  # padding must be respected by both paths
    enc = tiny_model.encode(tiny_inputs)
    dec = torch.randint(
        0, tiny_model.cfg.vocab_size, (3, 9), generator=torch.Generator().manual_seed(3)
    )
    full = tiny_model.decode(dec, enc)
    cached = _step_through(tiny_model, enc, dec)
    assert full.shape == (3, 9, tiny_model.cfg.vocab_size)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=0)
    assert torch.equal(cached.argmax(-1), full.argmax(-1))


@torch.no_grad()
def test_generate_with_and_without_cache_emit_identical_tokens(tiny_model, tiny_inputs):
    for greedy in (True, False):
        kw = dict(bos_id=BOS, greedy=greedy, temperature=1.5)
        a = tiny_model.generate(tiny_inputs, 8, generator=torch.Generator().manual_seed(4), **kw)
        b = tiny_model.generate(
            tiny_inputs, 8, use_cache=False, generator=torch.Generator().manual_seed(4), **kw
        )
        assert a.shape == (3, 8) and a.dtype == torch.int64
        assert torch.equal(a, b)


@torch.no_grad()
def test_constrained_decoding_never_emits_a_disallowed_token(tiny_model, tiny_cfg):
    inputs = random_encoder_inputs(tiny_cfg, 16, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(6)
    allowed = torch.rand(6, tiny_cfg.vocab_size, generator=g) < 0.01  # ~15 ids per position
    allowed[:, 0] = True
    for greedy in (True, False):
        out = tiny_model.generate(
            inputs, 6, allowed, bos_id=BOS, greedy=greedy, temperature=5.0, generator=g
        )
        for i in range(6):
            assert allowed[i, out[:, i]].all()
    # A (V,) constraint applies at every position, e.g. the 1000 action bins.
    bins = torch.zeros(tiny_cfg.vocab_size, dtype=torch.bool)
    bins[456:1456] = True
    out = tiny_model.generate(
        inputs, 6, bins, bos_id=BOS, greedy=False, temperature=3.0, generator=g
    )
    assert ((out >= 456) & (out < 1456)).all()


def test_generate_rejects_bad_arguments(tiny_model, tiny_inputs, tiny_cfg):
    v = tiny_cfg.vocab_size
    with pytest.raises(ValueError, match="generate needs bos_id"):
        tiny_model.generate(tiny_inputs, 3)
    with pytest.raises(ValueError, match="allowed permits no token at decoding positions \\[1\\]"):
        allowed = torch.ones(3, v, dtype=torch.bool)
        allowed[1] = False
        tiny_model.generate(tiny_inputs, 3, allowed, bos_id=BOS)
    with pytest.raises(ValueError, match=f"allowed must have shape \\({v},\\) or \\(3, {v}\\)"):
        tiny_model.generate(tiny_inputs, 3, torch.ones(v + 1, dtype=torch.bool), bos_id=BOS)
    with pytest.raises(ValueError, match="allowed must be a bool tensor"):
        tiny_model.generate(tiny_inputs, 3, torch.ones(v), bos_id=BOS)
    with pytest.raises(ValueError, match="n_tokens must be in \\[1, max_dec_len=16\\]"):
        tiny_model.generate(tiny_inputs, 17, bos_id=BOS)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        tiny_model.generate(tiny_inputs, 3, bos_id=BOS, greedy=False, temperature=0.0)


def test_decode_rejects_bad_tokens_and_masks(tiny_model, tiny_inputs):
    enc = tiny_model.encode(tiny_inputs)
    with pytest.raises(ValueError, match="dec_tokens must be an int64 tensor, got torch.int32"):
        tiny_model.decode(torch.zeros(3, 4, dtype=torch.int32), enc)
    with pytest.raises(ValueError, match="more than max_dec_len=16"):
        tiny_model.decode(torch.zeros(3, 17, dtype=torch.int64), enc)
    with pytest.raises(ValueError, match="self_attn_mask must be bool with shape \\(3, 4, 4\\)"):
        tiny_model.decode(
            torch.zeros(3, 4, dtype=torch.int64),
            enc,
            self_attn_mask=torch.ones(3, 4, 5, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="dec_positions must be int64 with shape"):
        tiny_model.decode(
            torch.zeros(3, 4, dtype=torch.int64), enc, dec_positions=torch.zeros(3, 4)
        )


@torch.no_grad()
def test_packed_decoder_rows_equal_separate_decoding(tiny_model, tiny_inputs):
    """Two target sequences in one row, positions restarting, block-diagonal self-attention."""
    enc = tiny_model.encode(tiny_inputs)
    g = torch.Generator().manual_seed(7)
    a = torch.randint(0, 1000, (3, 4), generator=g)
    b = torch.randint(0, 1000, (3, 5), generator=g)
    packed = torch.cat([a, b], dim=1)
    pos = torch.cat([torch.arange(4), torch.arange(5)]).expand(3, 9)
    block = torch.zeros(9, 9, dtype=torch.bool)
    block[:4, :4] = True
    block[4:, 4:] = True
    out = tiny_model.decode(packed, enc, dec_positions=pos, self_attn_mask=block.expand(3, 9, 9))
    torch.testing.assert_close(out[:, :4], tiny_model.decode(a, enc), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 4:], tiny_model.decode(b, enc), atol=1e-5, rtol=0)
    # cross_attn_mask: hiding the prompt tokens from the decoder equals padding them out.
    cfg = tiny_model.cfg
    cross = torch.ones(3, 4, cfg.encoder_seq_len, dtype=torch.bool)
    cross[:, :, : cfg.max_prompt_tokens] = False
    hidden = tiny_model.decode(a, enc, cross_attn_mask=cross)
    enc_padded = enc._replace(mask=enc.mask & cross[:, 0])
    torch.testing.assert_close(hidden, tiny_model.decode(a, enc_padded))


def test_seeded_runs_are_deterministic(tiny_cfg):
    def run():
        torch.manual_seed(123)
        model = UIO2Model(tiny_cfg)
        inputs = random_encoder_inputs(tiny_cfg, 2, generator=torch.Generator().manual_seed(9))
        tokens = model.generate(
            inputs, 5, bos_id=BOS, greedy=False, generator=torch.Generator().manual_seed(10)
        )
        loss = model(inputs, tokens).logsumexp(-1).mean()
        loss.backward()
        return model, tokens, loss

    m1, t1, l1 = run()
    m2, t2, l2 = run()
    assert torch.equal(t1, t2) and torch.equal(l1, l2)
    for (n, p1), p2 in zip(m1.named_parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2), n
        if p1.grad is None:  # unused here: the [R] head and mask embedding
            assert p2.grad is None and n.startswith(("recon_head", "embedder.mask_embed")), n
        else:
            assert torch.equal(p1.grad, p2.grad), n
    torch.manual_seed(124)
    assert not torch.equal(UIO2Model(tiny_cfg).token_embed.weight, m1.token_embed.weight)


def test_decode_step_exports_with_a_dynamic_cache_length():
    """torch.export (the front half of torch.onnx.export(dynamo=True)) must see no
    data-dependent control flow, and the cache length must stay symbolic."""
    cfg = get_config("tiny")
    model = UIO2Model(cfg).eval()
    enc = model.encode(random_encoder_inputs(cfg, 1))
    ck, cv = model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
    cache = torch.zeros(cfg.n_dec_layers, 1, cfg.n_heads, 2, cfg.head_dim)

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, token, position, self_k, self_v, cross_k, cross_v, enc_mask):
            return self.model.decode_step(
                token, position, self_k, self_v, cross_k, cross_v, enc_mask
            )

    lc = torch.export.Dim("cache_len", min=0, max=cfg.max_dec_len)
    dyn = (None, None, {3: lc}, {3: lc}, None, None, None)
    args = (torch.tensor([[5]]), torch.tensor([2]), cache, cache, ck, cv, enc.mask)
    with torch.no_grad():
        ep = torch.export.export(Step(), args, dynamic_shapes=dyn)
        for length in (0, 3):
            c = torch.randn(cfg.n_dec_layers, 1, cfg.n_heads, length, cfg.head_dim)
            got = ep.module()(args[0], args[1], c, c, ck, cv, enc.mask)
            want = model.decode_step(args[0], args[1], c, c, ck, cv, enc.mask)
            torch.testing.assert_close(got[0], want[0])
            assert got[1].shape[3] == length + 1


@torch.no_grad()
def test_greedy_decode_matches_generate_and_its_id_range(tiny_model, tiny_inputs):
    """greedy_decode (the exported decoder_greedy) picks generate's greedy tokens; cutting the
    head to an id range that holds every allowed id changes no token and gives those logits."""
    v = tiny_model.cfg.vocab_size
    lo, hi = 40, 72
    allowed = torch.zeros(v, dtype=torch.bool)
    allowed[lo + 3 : hi] = True
    expected = tiny_model.generate(tiny_inputs, 5, allowed, bos_id=BOS)
    enc = tiny_model.encode(tiny_inputs)
    cross_k, cross_v = tiny_model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
    tokens, logits = tiny_model.greedy_decode(cross_k, cross_v, enc.mask, allowed, 5, BOS)
    assert torch.equal(tokens, expected) and logits.shape == (3, 5, v)
    cut_tokens, cut_logits = tiny_model.greedy_decode(
        cross_k, cross_v, enc.mask, allowed, 5, BOS, ids=(lo, hi)
    )
    assert torch.equal(cut_tokens, expected) and cut_logits.shape == (3, 5, hi - lo)
    torch.testing.assert_close(cut_logits, logits[..., lo:hi], atol=1e-5, rtol=0)

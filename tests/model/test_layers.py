"""RMS norm, QK-norm attention and the float32 attention logits."""

from __future__ import annotations

import torch

from uio2_robot.model.layers import (
    RMSNorm,
    SelfAttention,
    SwiGLU,
    _explicit_attention,
    attention,
    attention_bias,
)
from uio2_robot.model.rope import RotaryEmbedding


def test_rms_norm_scales_to_unit_rms_and_has_only_a_scale():
    norm = RMSNorm(8)
    assert [n for n, _ in norm.named_parameters()] == ["weight"]
    x = torch.randn(4, 8) * 30 + 5
    y = norm(x)
    torch.testing.assert_close(y.pow(2).mean(-1), torch.ones(4), atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        norm.weight.fill_(2.0)
    torch.testing.assert_close(norm(x), 2 * y)


def test_qk_norm_makes_attention_invariant_to_the_scale_of_q_and_k():
    """Scaling q/k projections would blow up plain dot-product logits; with QK-norm it is a no-op."""
    torch.manual_seed(0)
    attn = SelfAttention(32, n_heads=2, head_dim=16)
    rope = RotaryEmbedding(16)
    x = torch.randn(2, 6, 32)
    cos, sin = rope.forward_1d(torch.arange(6).expand(2, 6))
    ref = attn(x, cos, sin, None)
    with torch.no_grad():
        q, k, _ = attn.wqkv.weight.chunk(3, dim=0)
        q.mul_(100.0)
        k.mul_(7.0)
    torch.testing.assert_close(attn(x, cos, sin, None), ref, atol=1e-4, rtol=1e-4)


def test_attention_masks_keys_and_survives_fully_masked_rows():
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 5, 4), torch.randn(1, 1, 5, 4)
    mask = torch.tensor([True, True, False, False, False]).view(1, 1, 1, 5).expand(1, 1, 3, 5)
    out = attention(q, k, v, mask, 0.5)
    ref = attention(q, k[..., :2, :], v[..., :2, :], None, 0.5)
    torch.testing.assert_close(out, ref)
    none = attention(q, k, v, torch.zeros(1, 1, 3, 5, dtype=torch.bool), 0.5)
    assert torch.isfinite(none).all()


def test_additive_bias_attends_exactly_like_the_bool_mask():
    """The decoder's precomputed bias gives the bool mask's weights, eager and as exported."""
    q, k, v = torch.randn(2, 3, 1, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    mask = torch.tensor([[1, 1, 0, 1, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)[:, None, None]
    bias = attention_bias(mask)
    assert bias.dtype == torch.float32 and bool((bias[mask] == 0).all())
    ref = attention(q, k, v, mask, 0.3)
    torch.testing.assert_close(attention(q, k, v, bias, 0.3), ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(_explicit_attention(q, k, v, bias, 0.3), ref, rtol=0, atol=1e-6)
    k_moved = k.clone()
    k_moved[..., 5, :] += 100.0  # a key masked in both rows changes nothing
    torch.testing.assert_close(attention(q, k_moved, v, bias, 0.3), ref, rtol=0, atol=1e-6)


def test_attention_logits_are_float32_for_low_precision_inputs():
    """bf16 logits of 300-ish magnitude lose the small differences; float32 keeps them."""
    q = torch.full((1, 1, 1, 64), 3.0)
    k = torch.full((1, 1, 2, 64), 3.0)
    k[..., 1, 0] += 0.05  # a logit difference of 0.15 on top of ~576
    v = torch.tensor([[[[0.0] * 64, [1.0] * 64]]])
    out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), None, 1.0)
    assert out.dtype == torch.bfloat16
    ref = attention(q, k.bfloat16().float(), v, None, 1.0)
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)


def test_swiglu_is_gated():
    mlp = SwiGLU(8, 16)
    with torch.no_grad():
        mlp.w_in.weight[:16].zero_()  # gate pre-activation 0 -> silu(0) = 0 -> output 0
    assert torch.count_nonzero(mlp(torch.randn(3, 8))) == 0


def test_attention_logits_stay_float32_under_bf16_autocast():
    """Training autocasts matmuls to bf16; the attention logits must not follow."""
    q = torch.full((1, 1, 1, 64), 3.0)
    k = torch.full((1, 1, 2, 64), 3.0)
    k[..., 1, 0] += 0.0625  # exact in bf16: logits 576 vs 576.1875, indistinguishable in bf16
    v = torch.tensor([[[[0.0] * 64, [1.0] * 64]]])
    want = torch.sigmoid(torch.tensor(0.1875))  # weight of key 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.matmul(q, k.transpose(-1, -2)).dtype == torch.bfloat16  # autocast is on
        out = attention(q, k, v, None, 1.0)
    torch.testing.assert_close(out.float().mean(), want, atol=2e-3, rtol=0)

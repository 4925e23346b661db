"""Perceiver resampler: shapes, per-frame independence, the cosine logit-scale clamp."""

from __future__ import annotations

import math

import torch

from uio2_robot.model.resampler import ImageResampler, PerceiverResampler, ResamplerAttention


def _resampler(**kw):
    torch.manual_seed(0)
    args = dict(patch_size=8, max_grid=4, dim=32, n_heads=2, mlp_hidden=48, n_layers=2)
    return ImageResampler(**(args | dict(n_latents=5, out_dim=24) | kw))


def test_shapes_any_number_of_frames_and_image_sizes():
    r = _resampler()
    assert len(r.resampler.layers) == 2
    assert r(torch.randn(2, 3, 3, 32, 32)).shape == (2, 3, 5, 24)
    assert r(torch.randn(2, 1, 3, 16, 16)).shape == (2, 1, 5, 24)  # smaller prompt images
    assert r(torch.randn(2, 0, 3, 32, 32)).shape == (2, 0, 5, 24)  # no frames at all


def test_each_frame_is_resampled_separately():
    r = _resampler()
    frames = torch.randn(1, 3, 3, 32, 32)
    out = r(frames)
    changed = frames.clone()
    changed[0, 1] = torch.randn(3, 32, 32)
    out2 = r(changed)
    torch.testing.assert_close(out2[0, 0], out[0, 0])
    torch.testing.assert_close(out2[0, 2], out[0, 2])
    assert not torch.allclose(out2[0, 1], out[0, 1])


def test_logit_scale_starts_at_10_and_is_clamped_at_100():
    attn = ResamplerAttention(32, 4)
    torch.testing.assert_close(attn.logit_scale_value(), torch.full((4, 1, 1), 10.0))
    lat, ctx = torch.randn(2, 3, 32), torch.randn(2, 7, 32)
    with torch.no_grad():
        attn.logit_scale.fill_(math.log(100.0))
    at_max = attn(lat, ctx)
    with torch.no_grad():
        attn.logit_scale.fill_(10.0)  # exp(10) ~ 22026 without the clamp
    torch.testing.assert_close(attn.logit_scale_value(), torch.full((4, 1, 1), 100.0))
    torch.testing.assert_close(attn(lat, ctx), at_max)
    # The clamp passes no gradient above the max, so the parameter cannot drift further.
    attn(lat, ctx).sum().backward()
    assert torch.count_nonzero(attn.logit_scale.grad) == 0


def test_cosine_logits_ignore_the_magnitude_of_the_inputs_projection():
    torch.manual_seed(1)
    attn = ResamplerAttention(16, 2)
    lat, ctx = torch.randn(1, 2, 16), torch.randn(1, 5, 16)
    ref = attn(lat, ctx)
    with torch.no_grad():
        attn.wq.weight.mul_(50.0)
    torch.testing.assert_close(attn(lat, ctx), ref, atol=1e-5, rtol=1e-4)


def test_dot_product_variant_has_no_logit_scale():
    r = PerceiverResampler(16, 2, 32, 2, 4, scaled_cosine=False)
    assert not any("logit_scale" in n for n, _ in r.named_parameters())
    assert r(torch.randn(3, 9, 16)).shape == (3, 4, 16)

"""The encoder sequence: layout, masks, tags, the [R] hooks, and bad-input errors."""

from __future__ import annotations

import pytest
import torch

from uio2_robot.model import GROUPS, EncoderInputs, UIO2Model, random_encoder_inputs
from uio2_robot.model.patches import patchify, unpatchify
from uio2_robot.model.sequence import encoder_positions, group_slices


def test_group_slices_tile_the_sequence(tiny_cfg, tiny_model, tiny_inputs):
    sl = UIO2Model.group_slices(tiny_cfg)
    assert list(sl) == list(GROUPS)
    bounds = [(s.start, s.stop) for s in sl.values()]
    assert bounds[0][0] == 0 and bounds[-1][1] == tiny_cfg.encoder_seq_len
    assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
    enc = tiny_model.encode(tiny_inputs)
    b, s = tiny_inputs.batch_size, tiny_cfg.encoder_seq_len
    assert enc.hidden.shape == (b, s, tiny_cfg.d_model)
    assert enc.mask.shape == (b, s) and enc.mask.dtype == torch.bool
    assert enc.positions.shape == (b, s, 2) and enc.positions.dtype == torch.int64
    assert enc.rope_2d.shape == (b, s)


def test_positions_follow_the_contract(tiny_cfg):
    pos, flag = encoder_positions(tiny_cfg)
    sl = group_slices(tiny_cfg)
    grid = tiny_cfg.image_size // tiny_cfg.patch_size
    assert pos[sl["prompt_tokens"], 0].tolist() == list(range(tiny_cfg.max_prompt_tokens))
    assert not flag[sl["prompt_tokens"]].any() and not flag[sl["proprio"]].any()
    obs = pos[sl["obs_patches"]].view(tiny_cfg.n_views, grid * grid, 2)
    assert obs[1, grid + 2].tolist() == [1, 2]  # view 1, row 1, column 2
    assert flag[sl["obs_patches"]].all() and flag[sl["history"]].all()
    hist = pos[sl["history"]].view(tiny_cfg.max_history, tiny_cfg.n_views, tiny_cfg.n_latents, 2)
    assert hist[1, 0, 3].tolist() == [1, 3]  # (frame t, latent l)
    prompt = pos[sl["prompt_images"]].view(tiny_cfg.max_prompt_images, tiny_cfg.n_latents, 2)
    assert prompt[1, 2].tolist() == [1, 2]  # (image k, latent l)


def test_padding_masks_reach_the_encoder_mask_and_padding_is_ignored(tiny_model, tiny_inputs):
    inp = tiny_inputs
    inp.token_mask[0, 10:] = False
    inp.prompt_image_mask[0, 1] = False
    inp.history_mask[0, 0] = False
    cfg = tiny_model.cfg
    sl, q = group_slices(cfg), cfg.n_latents
    enc = tiny_model.encode(inp)
    m = enc.mask[0]
    assert not m[sl["prompt_tokens"]][10:].any() and m[sl["prompt_tokens"]][:10].all()
    assert m[sl["prompt_images"]].tolist() == [True] * q + [False] * q
    assert (
        not m[sl["history"]][: cfg.n_views * q].any() and m[sl["history"]][cfg.n_views * q :].all()
    )
    assert m[sl["obs_patches"]].all() and m[sl["proprio"]].all()
    dec = torch.tensor([[3, 4, 5]] * 3)
    ref = tiny_model.decode(dec, enc)
    # Garbage in padded slots must not change anything the decoder sees.
    inp.tokens[0, 10:] = 7
    inp.prompt_images[0, 1] = torch.rand_like(inp.prompt_images[0, 1])
    inp.history_images[0, 0] = torch.rand_like(inp.history_images[0, 0])
    torch.testing.assert_close(tiny_model.decode(dec, tiny_model.encode(inp)), ref)


def test_encode_attn_mask_is_anded_with_padding(tiny_model, tiny_inputs):
    """Packing: a block mask keeps each part's attention inside itself."""
    cfg = tiny_model.cfg
    s = cfg.encoder_seq_len
    half = group_slices(cfg)["obs_patches"].start
    block = torch.zeros(s, s, dtype=torch.bool)
    block[:half, :half] = True
    block[half:, half:] = True
    emb = tiny_model.embed(tiny_inputs)
    out = tiny_model.encode_embedded(emb, block.expand(3, s, s))
    moved = emb.hidden.clone()
    moved[:, half:] += 1.0
    out2 = tiny_model.encode_embedded(emb._replace(hidden=moved), block.expand(3, s, s))
    torch.testing.assert_close(out2.hidden[:, :half], out.hidden[:, :half])
    assert not torch.allclose(out2.hidden[:, half:], out.hidden[:, half:])


def test_image_marker_tokens_share_the_prompt_image_index_embedding(tiny_model, tiny_inputs):
    cfg = tiny_model.cfg
    inp = tiny_inputs
    marker1 = cfg.image_marker_id + 1
    inp.tokens[:, 0] = marker1
    emb = tiny_model.embed(inp)
    e = tiny_model.embedder
    want = (
        tiny_model.token_embed.weight[marker1]
        + e.image_index_embed.weight[1]
        + e.modality_embed.weight[GROUPS.index("prompt_tokens")]
    )
    torch.testing.assert_close(emb.hidden[0, 0], want)
    # An ordinary token gets no index embedding.
    inp.tokens[:, 0] = 65
    plain = tiny_model.embed(inp).hidden[0, 0]
    torch.testing.assert_close(
        plain, tiny_model.token_embed.weight[65] + e.modality_embed.weight[0]
    )


def test_obs_patch_mask_hides_the_patch_and_reconstruction_shapes(tiny_model, tiny_inputs):
    cfg = tiny_model.cfg
    mask = torch.zeros(3, cfg.n_views, cfg.n_patches, dtype=torch.bool)
    mask[:, 0, :5] = True
    enc = tiny_model.encode(tiny_inputs, obs_patch_mask=mask)
    # Changing the pixels of masked patches changes nothing.
    changed = tiny_inputs.obs_images.clone()
    changed[:, 0, :, :8, :8] = -changed[:, 0, :, :8, :8]  # patch (0, 0) of view 0
    inp2 = EncoderInputs(**{**tiny_inputs.__dict__, "obs_images": changed})
    torch.testing.assert_close(tiny_model.encode(inp2, obs_patch_mask=mask).hidden, enc.hidden)
    assert not torch.allclose(tiny_model.encode(inp2).hidden, tiny_model.encode(tiny_inputs).hidden)
    rec, tgt = tiny_model.reconstruct_patches(enc), tiny_model.obs_patch_targets(tiny_inputs)
    assert rec.shape == tgt.shape == (3, cfg.n_views, cfg.n_patches, cfg.patch_dim)
    # Targets are the pixels: patch (0, 0) of view 0 is the image's top-left 8x8 block.
    torch.testing.assert_close(
        tgt[1, 0, 0], tiny_inputs.obs_images[1, 0, :, :8, :8].permute(1, 2, 0).flatten()
    )
    back = unpatchify(tgt, cfg.patch_size, cfg.image_size, cfg.image_size)
    torch.testing.assert_close(back, tiny_inputs.obs_images)


def test_patchify_is_row_major():
    img = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4).expand(1, 2, 4, 4)
    img = torch.cat([img, img[:, :1]], 1)  # 3 channels
    p = patchify(img, 2)  # (1, 4, 12)
    assert p.shape == (1, 4, 12)
    assert p[0, 1, 0].item() == img[0, 0, 0, 2].item()  # patch (0, 1) starts at column 2
    assert p[0, 2, 0].item() == img[0, 0, 2, 0].item()  # patch (1, 0) starts at row 2


def test_no_history_and_no_prompt_images_configs_work(tiny_cfg):
    cfg = tiny_cfg.replace(max_history=0, max_prompt_images=0)
    model = UIO2Model(cfg)
    inp = random_encoder_inputs(cfg, 2)
    enc = model.encode(inp)
    assert enc.hidden.shape[1] == cfg.encoder_seq_len == 16 + 2 * 16 + 1
    assert model.generate(inp, 2, bos_id=1).shape == (2, 2)


def _replace(inputs, **kw):
    return EncoderInputs(**{**inputs.__dict__, **kw})


@pytest.mark.parametrize(
    ("field", "make", "pattern"),
    [
        (
            "obs_images",
            lambda i: i.obs_images.to(torch.uint8),
            "obs_images must have a floating dtype.*uint8",
        ),
        ("tokens", lambda i: i.tokens.int(), "tokens must have int64, got torch.int32"),
        ("token_mask", lambda i: i.token_mask.long(), "token_mask must have bool"),
        (
            "obs_images",
            lambda i: i.obs_images[:, :1],
            r"obs_images has shape \(3, 1, 3, 32, 32\), expected \(3, 2, 3, 32, 32\)",
        ),
        ("tokens", lambda i: i.tokens[:, :5], r"tokens has shape \(3, 5\), expected \(3, 16\)"),
        ("proprio", lambda i: i.proprio[:2], r"proprio has shape \(2, 6\), expected \(3, 6\)"),
        ("prompt_images", lambda i: i.prompt_images[..., :8, :8], "prompt_images has shape"),
        ("history_mask", lambda i: i.history_mask.numpy(), "history_mask must be a torch.Tensor"),
        (
            "tokens",
            lambda i: i.tokens.fill_(5000),
            r"tokens has ids in \[5000, 5000\], expected \[0, 1474\)",
        ),
    ],
)
def test_bad_inputs_name_the_field_the_expectation_and_the_value(
    tiny_model, tiny_inputs, field, make, pattern
):
    bad = _replace(tiny_inputs, **{field: make(tiny_inputs)})
    with pytest.raises(ValueError, match=pattern):
        tiny_model.encode(bad)


def test_bad_obs_patch_mask_and_attn_mask(tiny_model, tiny_inputs):
    with pytest.raises(ValueError, match="obs_patch_mask must be bool with shape"):
        tiny_model.embed(tiny_inputs, obs_patch_mask=torch.zeros(3, 2, 5, dtype=torch.bool))
    emb = tiny_model.embed(tiny_inputs)
    with pytest.raises(ValueError, match="attn_mask must be bool with shape"):
        tiny_model.encode_embedded(emb, torch.ones(3, 4, 4, dtype=torch.bool))


@torch.no_grad()
def test_prompt_scenes_sit_on_the_observation_grid_and_count_only_when_present():
    from uio2_robot.model import get_config

    torch.manual_seed(0)
    cfg = get_config("tiny", max_prompt_scenes=1)
    model = UIO2Model(cfg).eval()
    sl = group_slices(cfg)
    assert sl["prompt_scenes"].stop - sl["prompt_scenes"].start == cfg.n_patches
    assert sl["prompt_scenes"].stop <= cfg.prompt_seq_len  # part of the (cacheable) prompt
    positions, rope_2d = encoder_positions(cfg)
    obs = positions[sl["obs_patches"]][: cfg.n_patches]
    assert torch.equal(positions[sl["prompt_scenes"]], obs) and rope_2d[sl["prompt_scenes"]].all()

    inp = random_encoder_inputs(cfg, 2, generator=torch.Generator().manual_seed(1))
    inp.scene_image_mask[1] = False
    before = model.encode(inp).hidden
    other = EncoderInputs(**{n: getattr(inp, n).clone() for n in EncoderInputs.names()})
    other.scene_images = torch.rand_like(inp.scene_images) * 2 - 1
    after = model.encode(other).hidden
    obs_sl = sl["obs_patches"]
    assert not torch.allclose(before[0, obs_sl], after[0, obs_sl])  # row 0 reads its scene
    torch.testing.assert_close(before[1, obs_sl], after[1, obs_sl])  # row 1's is padding
    other.scene_image_index[0] = cfg.max_prompt_images  # no such prompt image
    with pytest.raises(ValueError, match="scene_image_index"):
        model.encode(other)
    with pytest.raises(ValueError, match="exceeds max_prompt_images"):
        get_config("tiny", max_prompt_scenes=cfg.max_prompt_images + 1)

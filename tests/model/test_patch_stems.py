"""Wide observation images and the convolutional patch stem."""

from __future__ import annotations

import pytest
import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs
from uio2_robot.model.patches import ConvStem, PatchEmbed, grid_positions, patchify


def test_grid_positions_of_a_wide_grid_are_row_major() -> None:
    rows, cols = grid_positions(2, 3)
    assert rows.tolist() == [0, 0, 0, 1, 1, 1]
    assert cols.tolist() == [0, 1, 2, 0, 1, 2]


def test_wide_config_counts_patches_per_row_and_column() -> None:
    cfg = get_config("tiny", image_width=64)
    assert cfg.image_hw == (32, 64)
    assert cfg.grid_hw == (4, 8)
    assert cfg.n_patches == 32
    with pytest.raises(ValueError, match="image_width=60 must be a multiple of patch_size=8"):
        get_config("tiny", image_width=60)
    with pytest.raises(ValueError, match="patch_stem must be 'linear' or 'conv'"):
        get_config("tiny", patch_stem="vit")


@pytest.mark.parametrize("stem", ["linear", "conv"])
def test_wide_model_runs_with_either_stem(stem: str) -> None:
    cfg = get_config("tiny", image_width=64, patch_stem=stem)
    torch.manual_seed(0)
    model = UIO2Model(cfg).eval()
    inputs = random_encoder_inputs(cfg, 2, generator=torch.Generator().manual_seed(0))
    assert inputs.obs_images.shape[-2:] == (32, 64)
    enc = model.encode(inputs)
    assert enc.hidden.shape == (2, cfg.encoder_seq_len, cfg.d_model)
    assert torch.isfinite(enc.hidden).all()
    # a square batch is refused with the expected shape in the message
    square = get_config("tiny", patch_stem=stem)
    bad = random_encoder_inputs(square, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"expected \(2, 2, 3, 32, 64\)"):
        model.encode(bad)


def test_conv_stem_keeps_the_patch_grid_and_sees_where_in_the_patch() -> None:
    torch.manual_seed(0)
    stem = ConvStem(8, 16)
    img = torch.zeros(1, 3, 16, 24)
    assert stem(img).shape == (1, 6, 16)
    # a dot moved inside one patch changes that patch's token, not a far one
    a, b = img.clone(), img.clone()
    a[0, :, 1, 1] = 1.0
    b[0, :, 6, 6] = 1.0
    ta, tb = stem(a), stem(b)
    assert not torch.allclose(ta[0, 0], tb[0, 0])
    assert torch.allclose(ta[0, 5], tb[0, 5])
    with pytest.raises(ValueError, match="power-of-two patch_size"):
        ConvStem(6, 16)


def test_patch_embed_refuses_a_grid_larger_than_its_positions() -> None:
    embed = PatchEmbed(8, 16, max_grid=4)
    with pytest.raises(ValueError, match="4 x 5 patch grid"):
        embed(torch.zeros(1, 3, 32, 40))
    # the [R] objective's targets keep the linear layout whatever the stem
    assert patchify(torch.zeros(2, 3, 32, 64), 8).shape == (2, 32, 192)


def test_conv_patch_tokens_are_on_the_token_embedding_scale() -> None:
    """Unnormalised, the conv stem's tokens were ~20x smaller than prompt-token embeddings and
    vanished in the residual stream; the stem's RMSNorm puts them at unit RMS per channel."""
    torch.manual_seed(0)
    embed = PatchEmbed(16, 64, stem="conv")  # no positions: content only
    tokens = embed(torch.rand(2, 3, 32, 64) * 2 - 1)
    rms = tokens.pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.ones_like(rms), atol=0.05)

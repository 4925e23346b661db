"""Prefix encoding (ModelConfig.prompt_prefix): the prompt is encoded once and cached, each step
encodes only its own tokens, and the result equals the full prefix-masked encoder."""

from __future__ import annotations

import pytest
import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs
from uio2_robot.model.uio2 import scene_match

BOS = 1471


@pytest.fixture(scope="module")
def prefix_model():
    torch.manual_seed(0)
    # with a prompt-scene slot: scenes are part of the cached prompt
    return UIO2Model(get_config("tiny", prompt_prefix=True, max_prompt_scenes=1)).eval()


@pytest.fixture
def inputs(prefix_model):
    inp = random_encoder_inputs(prefix_model.cfg, 3, generator=torch.Generator().manual_seed(1))
    inp.token_mask[1, 5:] = False  # padded prompt tokens, an absent prompt image, no history
    inp.prompt_image_mask[2, 1] = False
    inp.scene_image_mask[1] = False  # a prompt without a scene
    inp.history_mask[0] = False
    return inp


def _prompt_and_step(model, inp):
    prompt = model.embed_prompt(*inp.prompt_tensors())
    step = model.embed_step(inp.obs_images, inp.history_images, inp.history_mask, inp.proprio)
    return prompt, step


@torch.no_grad()
def test_the_prompt_encoding_does_not_depend_on_the_observation(prefix_model, inputs):
    sp = prefix_model.cfg.prompt_seq_len
    before = prefix_model.encode(inputs).hidden
    inputs.obs_images.normal_()
    inputs.proprio.normal_()
    after = prefix_model.encode(inputs).hidden
    torch.testing.assert_close(after[:, :sp], before[:, :sp], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, sp:], before[:, sp:])  # the step part did change


@torch.no_grad()
def test_cached_prompt_plus_step_equals_the_full_encoder(prefix_model, inputs):
    enc = prefix_model.encode(inputs)
    want_k, want_v = prefix_model.precompute_cross_kv(enc.hidden, enc.positions, enc.rope_2d)
    prompt, step = _prompt_and_step(prefix_model, inputs)
    cache, _ = prefix_model.encode_prompt(prompt)
    cross_k, cross_v, mask, _ = prefix_model.encode_step(cache, step)
    assert torch.equal(mask, enc.mask)
    real = enc.mask[None, :, None, :, None]  # padded positions are never attended to
    torch.testing.assert_close(cross_k * real, want_k * real, atol=1e-5, rtol=0)
    torch.testing.assert_close(cross_v * real, want_v * real, atol=1e-5, rtol=0)


@torch.no_grad()
def test_split_states_are_the_full_encoders_and_score_scenes_alike(prefix_model, inputs):
    """The states scene-guided placement reads from the two halves (prompt: scene patches,
    step: observation patches) equal the full encoder's, so their scene scores do too."""
    enc = prefix_model.encode(inputs)
    prompt, step = _prompt_and_step(prefix_model, inputs)
    _, prompt_hidden = prefix_model.encode_prompt(prompt)
    *_, step_hidden = prefix_model.encode_step(prefix_model.encode_prompt(prompt)[0], step)
    sp = prefix_model.cfg.prompt_seq_len
    real = enc.mask.unsqueeze(-1)
    torch.testing.assert_close(prompt_hidden * real[:, :sp], enc.hidden[:, :sp] * real[:, :sp])
    torch.testing.assert_close(step_hidden, enc.hidden[:, sp:], atol=1e-5, rtol=0)
    sl = prefix_model.group_slices(prefix_model.cfg)["prompt_scenes"]
    n = prefix_model.cfg.n_patches
    picks = torch.tensor([0, n // 2, n - 1])
    want = prefix_model.scene_point_logits(enc, picks)
    got = scene_match(
        prompt_hidden[:, sl.start : sl.start + n], step_hidden[torch.arange(3), picks]
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


@torch.no_grad()
def test_generate_with_a_cached_prompt_gives_the_same_tokens(prefix_model, inputs):
    prompt, _ = _prompt_and_step(prefix_model, inputs)
    cache, _ = prefix_model.encode_prompt(prompt)
    plain = prefix_model.generate(inputs, 6, bos_id=BOS)
    cached = prefix_model.generate(inputs, 6, bos_id=BOS, prompt=cache)
    assert torch.equal(cached, plain)


@torch.no_grad()
def test_a_model_without_prefix_encoding_refuses_to_cache_its_prompt(tiny_model, tiny_inputs):
    prompt = tiny_model.embed_prompt(*tiny_inputs.prompt_tensors())
    with pytest.raises(ValueError, match="prompt_prefix"):
        tiny_model.encode_prompt(prompt)


def test_prefix_mask_needs_the_layout_of_a_non_static_sequence(prefix_model):
    with pytest.raises(ValueError, match="is_prompt"):
        prefix_model.prefix_mask(prefix_model.cfg.encoder_seq_len - 1)
    is_prompt = torch.tensor([True, True, False])
    mask = prefix_model.prefix_mask(3, is_prompt)
    assert mask.tolist() == [[True, True, False], [True, True, False], [True, True, True]]

"""Bundles of models with prompt scenes: the encoder and prompt encoder graphs take the three
scene inputs (and only such models' graphs do), with torch's outputs, scene or none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from uio2_robot.envs.spaces import action_space
from uio2_robot.model.inputs import PROMPT_FIELDS, EncoderInputs
from uio2_robot.policies.onnx_policy import OnnxPolicy
from uio2_robot.runtime.guidance import scene_match
from uio2_robot.runtime.manifest import (
    ENCODER_INPUTS,
    PROMPT_INPUTS,
    SCENE_INPUTS,
    STEP_INPUTS,
    encoder_input_names,
    load_bundle,
    prompt_input_names,
)
from uio2_robot.runtime.runner import BundleRunner

OLD_ENCODER_INPUTS = (
    "tokens",
    "token_mask",
    "prompt_images",
    "prompt_image_mask",
    "obs_images",
    "history_images",
    "history_mask",
    "proprio",
)
"""The encoder inputs of every bundle exported before prompt scenes existed."""


@pytest.fixture(scope="module")
def scene_export(tmp_path_factory: pytest.TempPathFactory, export_and_check) -> dict:
    return export_and_check(
        tmp_path_factory.mktemp("scene_export"), seed=3, prompt_prefix=True, max_prompt_scenes=1
    )


@pytest.fixture(scope="module")
def scene_model(scene_export: dict):
    from uio2_robot.policies.uio2 import UIO2Policy

    return UIO2Policy.from_checkpoint(scene_export["checkpoint"]).model


def test_input_names_follow_the_model_config() -> None:
    assert ENCODER_INPUTS == OLD_ENCODER_INPUTS
    for old in ({}, {"max_prompt_scenes": 0}, {"max_prompt_scenes": None}):
        assert encoder_input_names(old) == OLD_ENCODER_INPUTS
        assert prompt_input_names(old) == PROMPT_INPUTS == OLD_ENCODER_INPUTS[:4]
    scenes = {"max_prompt_scenes": 2}
    assert encoder_input_names(scenes) == EncoderInputs.names()
    assert prompt_input_names(scenes) == PROMPT_FIELDS == (*PROMPT_INPUTS, *SCENE_INPUTS)


def test_a_model_without_scenes_keeps_the_old_inputs(bundle: Path) -> None:
    loaded = load_bundle(bundle)
    assert "max_prompt_scenes" in loaded.manifest["model_config"]  # written, and 0
    assert tuple(s.name for s in loaded.inputs("encoder")) == OLD_ENCODER_INPUTS


def test_scene_bundle_exports_with_parity(scene_export: dict) -> None:
    assert scene_export["status"] == 0
    parity = scene_export["report"]["parity"]
    assert parity["encoder_path"] == "prompt_encoder + step_encoder"
    assert parity["passed"] is True and parity["action_agreement"] == 1.0
    assert parity["max_logit_diff"] < 1e-4  # torch's own encoder vs the two ONNX halves
    loaded = load_bundle(scene_export["bundle"])
    enc = {s.name: s for s in loaded.inputs("encoder")}
    assert tuple(enc) == EncoderInputs.names()
    assert tuple(s.name for s in loaded.inputs("prompt_encoder")) == PROMPT_FIELDS
    assert tuple(s.name for s in loaded.inputs("step_encoder")) == STEP_INPUTS  # unchanged
    h, w = loaded.processor.image_size
    assert enc["scene_images"].shape == ("batch", 1, 3, h, w)
    assert enc["scene_image_mask"].shape == ("batch", 1) and enc["scene_image_mask"].dtype == "bool"
    assert enc["scene_image_index"].dtype == "int64"


def _arrays(runner: BundleRunner, scene: bool) -> dict[str, np.ndarray]:
    """Processor arrays of a prompt whose second image is a camera frame (a scene) or not."""
    processor = runner.bundle.processor
    rng = np.random.default_rng(0)
    size = processor.frame_size if scene else (24, 24)
    small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    picture = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    prompt = processor.encode_prompt(["put ", small, " on ", picture])
    frame = (*processor.frame_size, 3)
    obs = {k: rng.integers(0, 256, frame, dtype=np.uint8) for k in processor.camera_keys}
    obs[processor.proprio_key] = rng.normal(size=processor.proprio_dim).astype(np.float32)
    arrays = processor.collate([{**prompt, **processor.encode_observation(obs)}])
    assert arrays["scene_image_mask"].tolist() == [[scene]]
    assert arrays["scene_image_index"].tolist() == [[1 if scene else 0]]  # prompt image slot 1
    return arrays


@pytest.mark.parametrize("scene", [True, False], ids=["scene", "scene_masked_off"])
def test_onnx_matches_torch_with_and_without_a_scene(scene_export, scene_model, scene) -> None:
    from uio2_robot.export.graphs import EncoderGraph, PromptEncoderGraph

    runner = BundleRunner(scene_export["bundle"], threads=1, warmup=False)
    arrays = _arrays(runner, scene)

    def prompt_and_states(a: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        cache, states = runner.encode_prompt_states(a)
        return (*cache, states)

    for graph, run in (
        (EncoderGraph(scene_model), runner.encode),
        (PromptEncoderGraph(scene_model), prompt_and_states),
    ):
        with torch.no_grad():
            want = graph(*(torch.from_numpy(arrays[n]) for n in graph.input_names))
        got = run(arrays)
        assert len(got) == len(want)
        for w, g in zip(want, got, strict=True):
            assert tuple(w.shape) == g.shape
            np.testing.assert_allclose(g, w.numpy(), atol=1e-5)
    # a present scene adds its patches to the prompt; masked off, they are dropped as padding
    cfg = runner.bundle.manifest["model_config"]
    h, w = runner.bundle.processor.image_size
    n_patches = (h // cfg["patch_size"]) * (w // cfg["patch_size"])
    prompt_len = runner.encode_prompt(arrays)[2].shape[1]
    other_len = runner.encode_prompt(_arrays(runner, not scene))[2].shape[1]
    assert prompt_len - other_len == (n_patches if scene else -n_patches)


def test_exported_states_give_torchs_scene_scores(scene_export, scene_model) -> None:
    """The prompt graph's scene states and the step graph's observation states score like
    ``UIO2Model.scene_point_logits`` on the whole prefix-masked encoding."""
    from uio2_robot.model.inputs import EncoderInputs as Inputs

    runner = BundleRunner(scene_export["bundle"], threads=1, warmup=False)
    assert runner.has_scene_states
    arrays = _arrays(runner, scene=True)
    cache, scene_states = runner.encode_prompt_states(arrays)
    cross, batch = runner.encode_cross(arrays, cache, obs_states=True)
    assert batch == 1 and len(cross) == 4
    n = scene_model.cfg.n_patches
    assert scene_states.shape == cross[3].shape == (1, n, scene_model.cfg.d_model)
    inputs = Inputs(**{k: torch.from_numpy(arrays[k]) for k in Inputs.names()})
    with torch.no_grad():
        enc = scene_model.encode(inputs)
        for pick in (0, n // 2, n - 1):
            want = scene_model.scene_point_logits(enc, torch.tensor([pick]))[0].numpy()
            np.testing.assert_allclose(
                scene_match(scene_states[0], cross[3][0, pick]), want, atol=1e-4
            )
    with pytest.raises(ValueError, match="step encoder"):
        runner.encode_cross(arrays, None, obs_states=True)


def test_guided_placement_is_the_same_in_torch_and_onnx(scene_export) -> None:
    """Both runtimes guide the same steps to the same tokens, and guiding changes some: the
    torch policy runs ``UIO2Model.greedy_decode`` with the guidance tables, the ONNX policy the
    ``decoder_guided`` graph exported from it; the pick is the unguided decode's."""
    from uio2_robot.policies.uio2 import UIO2Policy

    policies = {
        "torch": UIO2Policy.from_checkpoint(scene_export["checkpoint"], guide_place=True),
        "onnx": OnnxPolicy(scene_export["bundle"], threads=1, guide_place=True),
        "unguided": OnnxPolicy(scene_export["bundle"], threads=1, warmup=False),
        "torch_unguided": UIO2Policy.from_checkpoint(scene_export["checkpoint"], guide_place=False),
    }
    assert policies["onnx"].runner.has_guided_decoder
    assert "decoder_guided" in load_bundle(scene_export["bundle"]).graphs
    processor = policies["onnx"].processor
    rng = np.random.default_rng(1)
    changed = 0
    for episode in range(3):
        small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
        scene = rng.integers(0, 256, (*processor.frame_size, 3), dtype=np.uint8)
        for policy in policies.values():
            policy.reset(["put ", small, " as in ", scene], action_space("primitive"))
        for _ in range(4):
            frame = (*processor.frame_size, 3)
            obs = {k: rng.integers(0, 256, frame, dtype=np.uint8) for k in processor.camera_keys}
            obs[processor.proprio_key] = rng.normal(size=processor.proprio_dim).astype(np.float32)
            tokens = {name: p.plan_tokens(obs) for name, p in policies.items()}
            assert np.array_equal(tokens["torch"], tokens["onnx"]), episode
            assert np.array_equal(tokens["torch_unguided"], tokens["unguided"]), episode
            assert np.array_equal(tokens["onnx"][:3], tokens["unguided"][:3])  # same pick
            changed += int(not np.array_equal(tokens["onnx"], tokens["unguided"]))
    assert changed > 0


def test_guidance_needs_scene_states(bundle) -> None:
    with pytest.raises(ValueError, match="scene states"):
        OnnxPolicy(bundle, threads=1, warmup=False, guide_place=True)


def test_guided_decoder_refuses_bad_tables(scene_export) -> None:
    runner = BundleRunner(scene_export["bundle"], threads=1, warmup=False)
    arrays = _arrays(runner, scene=True)
    cache, _ = runner.encode_prompt_states(arrays)
    cross, b = runner.encode_cross(arrays, cache)
    lo, hi = runner.greedy_ids
    mask = np.zeros(runner.vocab_size, dtype=bool)
    mask[lo:hi] = True
    k = hi - lo
    spec = next(s for s in runner.bundle.inputs("decoder_guided") if s.name == "place_rows")
    n_rows = int(spec.shape[1])  # every observation patch + "no patch"
    picks = np.zeros((k, k), dtype=np.int64)
    rows = np.ones((1, n_rows, 2, k), dtype=bool)
    assert runner.decode_guided(cross, b, 6, mask, picks, rows).shape == (1, 6)
    with pytest.raises(ValueError, match=r"pick_patch must be int64"):
        runner.decode_guided(cross, b, 6, mask, picks.astype(np.int32), rows)
    with pytest.raises(ValueError, match="must index place_rows"):
        runner.decode_guided(cross, b, 6, mask, picks + n_rows, rows)
    with pytest.raises(ValueError, match="place_rows must be bool"):
        runner.decode_guided(cross, b, 6, mask, picks, rows.astype(np.float32))
    with pytest.raises(ValueError, match="'place_rows' has shape"):  # the graph's row count
        runner.decode_guided(cross, b, 6, mask, picks, rows[:, :-1])
    wider = mask.copy()
    wider[lo - 1] = True
    with pytest.raises(ValueError, match="within the ids"):  # the graph computes lo..hi-1 only
        runner.decode_guided(cross, b, 6, wider, picks, rows)
    with pytest.raises(ValueError, match="at most"):
        runner.decode_guided(cross, b, runner.greedy_tokens + 1, mask, picks, rows)


def test_torch_guidance_needs_greedy_decoding(scene_export) -> None:
    from uio2_robot.policies.uio2 import UIO2Policy

    with pytest.raises(ValueError, match="greedy"):
        UIO2Policy.from_checkpoint(scene_export["checkpoint"], guide_place=True, greedy=False)

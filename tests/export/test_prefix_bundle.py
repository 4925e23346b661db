"""Bundles of prefix-encoding models: the prompt is encoded once per episode by its own graph,
each step by the step graph, with the same tokens as torch and as the whole-encoder graph."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from uio2_robot.runtime.manifest import (
    MANIFEST_FILE,
    PROMPT_INPUTS,
    STEP_INPUTS,
    BundleError,
    load_bundle,
)
from uio2_robot.runtime.runner import BundleRunner


@pytest.fixture(scope="module")
def prefix_export(tmp_path_factory: pytest.TempPathFactory, export_and_check) -> dict:
    return export_and_check(tmp_path_factory.mktemp("prefix_export"), seed=2, prompt_prefix=True)


def test_prefix_bundle_has_both_encoder_halves_and_passes_parity(prefix_export: dict) -> None:
    assert prefix_export["status"] == 0
    bundle = load_bundle(prefix_export["bundle"])
    assert bundle.graphs == (
        "encoder",
        "decoder_step",
        "decoder_greedy",
        "prompt_encoder",
        "step_encoder",
    )
    # no prompt scenes: the inputs of the prefix bundles exported before scenes existed
    assert tuple(s.name for s in bundle.inputs("prompt_encoder")) == PROMPT_INPUTS
    assert tuple(s.name for s in bundle.inputs("step_encoder")) == STEP_INPUTS
    parity = prefix_export["report"]["parity"]
    assert parity["encoder_path"] == "prompt_encoder + step_encoder"
    assert parity["passed"] is True and parity["action_agreement"] == 1.0


def test_step_graph_gives_the_whole_encoders_outputs(prefix_export: dict) -> None:
    runner = BundleRunner(prefix_export["bundle"], threads=1)
    assert runner.has_prompt_cache
    feed = {}
    rng = np.random.default_rng(0)
    for spec in runner.encoder_inputs:
        shape = tuple(2 if isinstance(d, str) else d for d in spec.shape)
        if spec.dtype == "bool":
            feed[spec.name] = np.ones(shape, dtype=bool)
        elif spec.dtype == "int64":
            feed[spec.name] = rng.integers(0, 200, shape).astype(np.int64)
        else:
            feed[spec.name] = rng.uniform(-1, 1, shape).astype(np.float32)
    feed["token_mask"][:, 6:] = False  # padded prompt: the prompt graph drops it
    feed["token_mask"][1, 4:] = False
    prompt = runner.encode_prompt(feed)
    assert (
        prompt[0].shape[3]
        == 6
        + runner.bundle.manifest["model_config"]["max_prompt_images"]
        * (runner.bundle.manifest["model_config"]["n_latents"])
    )
    step_k, step_v, step_mask = runner.encode_step(feed, prompt)
    full_k, full_v, full_mask = runner.encode(feed)
    np.testing.assert_array_equal(step_mask, full_mask)
    real = full_mask[None, :, None, :, None]
    np.testing.assert_allclose(step_k * real, full_k * real, atol=1e-5)
    np.testing.assert_allclose(step_v * real, full_v * real, atol=1e-5)
    with pytest.raises(ValueError, match="prompt cache must be"):
        runner.encode_step(feed, prompt[:3])


def test_int8_keeps_the_prompt_encoder_fp32(prefix_export: dict, tmp_path: Path) -> None:
    """The prompt runs once per episode: no speed to win by quantising it, only error."""
    from uio2_robot.export.bundle import convert_bundle

    fp32 = load_bundle(prefix_export["bundle"])
    int8 = convert_bundle(fp32.root, tmp_path / "int8", "int8")
    prompt = int8.graph_path("prompt_encoder").read_bytes()
    assert prompt == fp32.graph_path("prompt_encoder").read_bytes()
    assert "step_encoder" in int8.manifest["exporter"]["int8_graphs"]
    assert "prompt_encoder" not in int8.manifest["exporter"]["int8_graphs"]
    runner = BundleRunner(int8, threads=1)  # and it runs
    assert runner.has_prompt_cache


def test_a_plain_bundle_has_no_prompt_graph(runner) -> None:
    assert not runner.has_prompt_cache
    with pytest.raises(ValueError, match="no prompt_encoder graph"):
        runner.encode_prompt({})


def test_a_prefix_bundle_missing_its_prompt_graph_is_refused(
    prefix_export: dict, tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(prefix_export["bundle"], copy)
    manifest = json.loads((copy / MANIFEST_FILE).read_text())
    del manifest["files"]["prompt_encoder"]
    (copy / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="prompt_encoder"):
        load_bundle(copy)


def test_io_binding_path_gives_the_same_tokens(prefix_export: dict) -> None:
    """The GPU path (outputs kept as OrtValues between graphs) exercised on the CPU."""
    plain = BundleRunner(prefix_export["bundle"], threads=1)
    bound = BundleRunner(prefix_export["bundle"], threads=1)
    bound.use_io_binding = True
    feed = {}
    for spec in plain.encoder_inputs:
        shape = tuple(1 if isinstance(d, str) else d for d in spec.shape)
        rng = np.random.default_rng(len(feed))
        feed[spec.name] = (
            np.ones(shape, bool)
            if spec.dtype == "bool"
            else rng.integers(0, 100, shape).astype(spec.dtype)
            if spec.dtype == "int64"
            else rng.uniform(-1, 1, shape).astype(spec.dtype)
        )
    prompt = plain.encode_prompt(feed)
    for cache in (None, prompt):
        want, want_logits = plain.generate(feed, 5, return_logits=True, prompt=cache)
        got, got_logits = bound.generate(feed, 5, return_logits=True, prompt=cache)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got_logits, want_logits, atol=1e-6)


def test_prompt_and_step_graphs_refuse_bad_inputs(prefix_export: dict) -> None:
    runner = BundleRunner(prefix_export["bundle"], threads=1, warmup=False)
    feed = {}
    for spec in runner.encoder_inputs:
        shape = tuple(1 if isinstance(d, str) else d for d in spec.shape)
        feed[spec.name] = np.ones(shape, dtype=spec.dtype)
    prompt = runner.encode_prompt(feed)
    with pytest.raises(ValueError, match="prompt_encoder input 'tokens' has dtype int32"):
        runner.encode_prompt({**feed, "tokens": feed["tokens"].astype(np.int32)})
    with pytest.raises(ValueError, match="step_encoder input 'obs_images' has shape"):
        runner.encode_step({**feed, "obs_images": feed["obs_images"][:, :, :, :-1]}, prompt)
    with pytest.raises(ValueError, match="step_encoder input 'prompt_mask' has shape"):
        runner.encode_step(feed, (*prompt[:2], prompt[2][:, :-1], *prompt[3:]))

"""The onnxruntime side: providers, thread settings, checked inputs, constrained decoding."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from uio2_robot.export.parity import synthetic_episodes
from uio2_robot.export.variants import topological_sort
from uio2_robot.runtime.runner import PROVIDER_ORDER, choose_providers, session_options


@pytest.fixture
def batch(runner) -> dict[str, np.ndarray]:
    processor = runner.bundle.processor
    ep = synthetic_episodes(processor, n_episodes=1, steps=1, seed=3)[0]
    arrays = {
        **processor.encode_prompt(ep.prompt),
        **processor.encode_observation(ep.observations[0]),
    }
    return processor.collate([arrays])


def test_providers_reported_from_the_session(runner) -> None:
    assert runner.providers == ["CPUExecutionProvider"]  # what runs, not what is installed
    assert choose_providers() == [p for p in PROVIDER_ORDER if p in ort.get_available_providers()]
    assert choose_providers(["cpu"]) == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="not available.*onnxruntime-gpu"):
            choose_providers(["cuda"])


def test_thread_setting(runner) -> None:
    assert session_options(2).intra_op_num_threads == 2
    with pytest.raises(ValueError, match="threads must be an int >= 0"):
        session_options(-1)


def test_encoder_refuses_wrong_dtype(runner, batch) -> None:
    bad = {**batch, "obs_images": batch["obs_images"].astype(np.float64)}
    with pytest.raises(ValueError, match="'obs_images' has dtype float64, expected float32"):
        runner.encode(bad)
    bad = {**batch, "tokens": batch["tokens"].astype(np.int32)}
    with pytest.raises(ValueError, match="'tokens' has dtype int32, expected int64"):
        runner.encode(bad)


def test_encoder_refuses_wrong_shape(runner, batch) -> None:
    bad = {**batch, "tokens": batch["tokens"][:, :-1]}
    with pytest.raises(ValueError, match=r"'tokens' has shape \(1, 15\), expected \(batch, 16\)"):
        runner.encode(bad)
    bad = {**batch, "proprio": np.concatenate([batch["proprio"]] * 2)}  # batch 2 vs 1
    with pytest.raises(ValueError, match="'proprio' has shape .* with batch=1"):
        runner.encode(bad)
    missing = {k: v for k, v in batch.items() if k != "history_mask"}
    with pytest.raises(ValueError, match=r"missing \['history_mask'\]"):
        runner.encode(missing)
    with pytest.raises(ValueError, match="must be a numpy array"):
        runner.encode({**batch, "proprio": batch["proprio"].tolist()})


def test_decoder_refuses_bad_cache(runner, batch) -> None:
    cross_k, cross_v, enc_mask = runner.encode(batch)
    cache = runner.empty_cache(1)
    token = np.zeros((1, 1), dtype=np.int64)
    position = np.zeros((1,), dtype=np.int64)
    logits, k, v = runner.decode_step(token, position, cache, cache, cross_k, cross_v, enc_mask)
    assert logits.shape == (1, runner.vocab_size) and k.shape[3] == 1
    with pytest.raises(ValueError, match="'self_v' has shape .* with batch=1, cache=1"):
        runner.decode_step(token, position, k, cache, cross_k, cross_v, enc_mask)


def test_constrained_greedy_decoding(runner, batch) -> None:
    allowed = np.array([7, 11, 300], dtype=np.int64)
    tokens, logits = runner.generate(batch, 4, allowed, return_logits=True)
    assert tokens.shape == (1, 4) and np.isin(tokens, allowed).all()
    # the pick is the argmax among the allowed ids of the raw logits
    np.testing.assert_array_equal(tokens[0], allowed[logits[0][:, allowed].argmax(-1)])
    free = runner.generate(batch, 4)
    np.testing.assert_array_equal(free[0, 0], logits[0, 0].argmax())
    with pytest.raises(ValueError, match="n_tokens must be in"):
        runner.generate(batch, runner.max_dec_len + 1)
    with pytest.raises(ValueError, match="allowed ids must lie in"):
        runner.generate(batch, 2, np.array([runner.vocab_size]))


def test_fused_decoding_equals_the_token_loop(runner, batch) -> None:
    """decoder_greedy (one call) and the decoder_step loop give the same tokens and logits,
    for the longest mode, a shorter prefix, and a decode longer than the graph unrolls."""
    ids = runner.bundle.processor.allowed_action_ids("primitive")
    n = runner.greedy_tokens
    fused, fused_logits = runner.generate(batch, n, ids, return_logits=True)
    short = runner.generate(batch, n - 1, ids)
    runner.fused_decoding = False
    try:
        loop, loop_logits = runner.generate(batch, n, ids, return_logits=True)
    finally:
        runner.fused_decoding = True
    np.testing.assert_array_equal(fused, loop)
    # the greedy graph computes the action bins' logits only; the others read -inf
    lo, hi = runner.greedy_ids
    assert lo <= ids.min() and ids.max() < hi
    np.testing.assert_allclose(fused_logits[..., lo:hi], loop_logits[..., lo:hi], atol=1e-5)
    assert np.isneginf(fused_logits[..., :lo]).all() and np.isneginf(fused_logits[..., hi:]).all()
    np.testing.assert_array_equal(short, fused[:, : n - 1])  # greedy decoding is causal
    if n < runner.max_dec_len:  # past the unrolled length: the step loop takes over
        longer = runner.generate(batch, n + 1, ids)
        np.testing.assert_array_equal(longer[:, :n], fused)
    # an id outside the action bins cannot come from the greedy graph: the loop serves it
    wider = np.append(ids, lo - 1)
    tokens, logits = runner.generate(batch, n, wider, return_logits=True)
    assert np.isfinite(logits).all()
    np.testing.assert_array_equal(tokens[0], wider[logits[0][:, wider].argmax(-1)])


def test_topological_sort_repairs_node_order() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    a = helper.make_node("Relu", ["x"], ["a"])
    b = helper.make_node("Neg", ["a"], ["b"])
    c = helper.make_node("Abs", ["b"], ["y"])
    graph = helper.make_graph([c, a, b], "g", [x], [y])  # out of order
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)
    topological_sort(model.graph)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Relu", "Neg", "Abs"]


def test_encoder_drops_padding(runner, batch) -> None:
    """The compacted encoder keeps exactly the positions some batch row really uses."""
    cfg = runner.bundle.manifest["model_config"]
    assert runner.bundle.manifest["encoder_drops_padding"] is True
    _, _, enc_mask = runner.encode(batch)
    nl, v = cfg["n_latents"], cfg["n_views"]
    real = (
        batch["token_mask"].sum()
        + batch["prompt_image_mask"].sum() * nl
        + v * (cfg["image_size"] // cfg["patch_size"]) ** 2
        + batch["history_mask"].sum() * v * nl
        + 1
    )
    assert enc_mask.shape == (1, real) and enc_mask.all()
    # a second example with more history widens the union; its padding is masked per row
    fuller = {**batch, "history_mask": np.ones_like(batch["history_mask"])}
    both = {k: np.concatenate([batch[k], fuller[k]]) for k in batch}
    _, _, mask2 = runner.encode(both)
    assert mask2.shape[1] > real and mask2[1].all() and mask2[0].sum() == real

"""policy=uio2_official on the suite (primitive mode), with the imported tiny fixture model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.official.conftest import DATA
from uio2_robot.official.convert import import_release
from uio2_robot.policies.factory import make_policy
from uio2_robot.tokenize.official_actions import ActionGrammar, pose_to_bins, step_text

pytest.importorskip("sentencepiece")


@pytest.fixture()
def checkpoint(release_dir, tmp_path):
    import_release(release_dir, tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_plays_a_suite_episode_with_well_formed_plans(checkpoint):
    from uio2_robot.envs import make_env

    policy = make_policy(
        "uio2_official",
        checkpoint=str(checkpoint),
        tokenizer=str(DATA / "tokenizer_synthetic.model"),
    )
    env = make_env("visual_manipulation", "L1", action_mode="primitive", image_size=(64, 128))
    obs, info = env.reset(seed=0)
    policy.reset(info["prompt"], env.action_space)
    assert "<image_history_1>" in policy._prompt and policy._history  # prompt images -> history
    steps = 0
    for _ in range(env.max_steps):
        action = policy.act(obs)
        assert env.action_space.contains(action)
        obs, _, terminated, truncated, _ = env.step(action)
        steps += 1
        if terminated or truncated:
            break
    assert steps >= 1
    # the decoded plan is a sequence of whole grammar steps, each token allowed where it stands
    tokens = policy.last_plan_tokens
    grammar = policy.grammar
    assert all(grammar.allowed(tokens[:i])[tokens[i]] for i in range(len(tokens)))
    kinds, poses = grammar.parse_plan(tokens)
    assert len(kinds) >= 1 and poses.shape == (len(kinds), 6)
    env.close()


def test_grammar_round_trips_a_plan_and_rejects_free_text():
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    tok = OfficialTokenizer(DATA / "tokenizer_synthetic.model")
    grammar = ActionGrammar.build(tok.encode, tok.vocab, 33280, max_steps=3)
    pose = [0.6, -0.2, 1.0, 0.3, 0.4, -2.0]
    text = f"{step_text(0, 'pick_place', pose_to_bins(pose))} {step_text(1, 'push', pose_to_bins(pose))}"
    ids = [*tok.encode(text), 1]
    assert all(grammar.allowed(ids[:i])[ids[i]] for i in range(len(ids)))
    kinds, poses = grammar.parse_plan(ids)
    assert kinds == ["pick_place", "push"]
    np.testing.assert_allclose(poses[0], pose, atol=2 * np.pi / 999 + 1e-6)
    # at the start only step 0 may begin; EOS is not allowed before a whole step
    first = grammar.allowed([])
    assert first.sum() == 1 and not first[1]
    assert not grammar.allowed(ids[:5])[1]


def test_onnx_export_plays_the_same_plan_as_torch(checkpoint, tmp_path):
    """policy=uio2_official bundle=DIR (onnxruntime) and checkpoint=DIR (torch) decode the same
    constrained plan tokens from the same first observation."""
    from safetensors.numpy import load_file

    from uio2_robot.envs import make_env
    from uio2_robot.official.convert import load_official_checkpoint
    from uio2_robot.official.onnx_export import export_official, static_example

    model, _, _ = load_official_checkpoint(checkpoint)
    fx = load_file(str(DATA / "fixture.safetensors"))
    batch = {k[len("batch/") :]: v for k, v in fx.items() if k.startswith("batch/")}
    export_official(model, static_example(batch, 96, model.cfg.max_frames), tmp_path / "onnx")
    tok = str(DATA / "tokenizer_synthetic.model")
    torch_policy = make_policy("uio2_official", checkpoint=str(checkpoint), tokenizer=tok)
    onnx_policy = make_policy("uio2_official", bundle=str(tmp_path / "onnx"), tokenizer=tok)
    env = make_env("visual_manipulation", "L1", action_mode="primitive", image_size=(64, 128))
    obs, info = env.reset(seed=3)
    plans = []
    for policy in (torch_policy, onnx_policy):
        policy.reset(info["prompt"], env.action_space)
        plans.append((policy.act(obs), policy.last_plan_tokens))
    assert plans[0][1] == plans[1][1] and len(plans[0][1]) > 10
    np.testing.assert_array_equal(plans[0][0], plans[1][0])
    env.close()

"""The oracle measurement runs the rollout loop on the evaluation seeds rollout uses."""

from __future__ import annotations

from uio2_robot.eval.oracle_eval import main, oracle_success
from uio2_robot.seeding import EVAL_SEED_BASE, episode_seed


def test_oracle_success_counts_episodes_on_the_evaluation_seeds() -> None:
    r = oracle_success("rotate", "L1", "primitive", episodes=2)
    assert (r.episodes, r.successes, r.rate) == (2, 2, 1.0)
    assert r.failures == {} and r.failed_seeds == [] and r.mean_steps >= 1.0
    assert r.counters == {}  # the floating tool has no arm counters


def test_it_runs_the_seeds_rollout_runs() -> None:
    """Same steps as the oracle policy through rollout's episode on episode_seed(EVAL_SEED_BASE,
    ...): the measurement no longer uses raw seeds of its own."""
    from uio2_robot.envs import make_env
    from uio2_robot.eval.rollout import run_episode
    from uio2_robot.policies.oracle import OraclePolicy

    r = oracle_success("visual_manipulation", "L1", "delta", episodes=1)
    env = make_env("visual_manipulation", "L1", "delta", image_size=32, cameras=("top",))
    seed = episode_seed(EVAL_SEED_BASE, "visual_manipulation", "L1", 0)
    result, _ = run_episode(env, OraclePolicy(), seed)
    env.close()
    assert r.mean_steps == result.steps and r.successes == int(result.success)


def test_arm_counters_are_summed_and_the_table_prints(capsys) -> None:
    code = main(
        [
            "--episodes",
            "1",
            "--tasks",
            "rotate",
            "--modes",
            "primitive",
            "--levels",
            "first",
            "--embodiments",
            "floating",
            "arm",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "floating" in out and "arm" in out and "rotate" in out

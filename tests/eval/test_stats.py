import math

import pytest

from uio2_robot.eval.stats import wilson_interval


def test_wilson_matches_known_values():
    # 8/10: the textbook Wilson interval is about [0.490, 0.943].
    low, high = wilson_interval(8, 10)
    assert math.isclose(low, 0.4902, abs_tol=1e-3)
    assert math.isclose(high, 0.9433, abs_tol=1e-3)


def test_wilson_edges_stay_in_unit_interval_and_are_not_degenerate():
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9


def test_wilson_narrows_with_more_episodes():
    w20 = wilson_interval(16, 20)
    w200 = wilson_interval(160, 200)
    assert (w200[1] - w200[0]) < (w20[1] - w20[0])


@pytest.mark.parametrize("s,n", [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(s, n):
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(s, n)


def test_report_chart_handles_zero_and_full_success(tmp_path):
    """Rounding in the interval ends must not break the error bars (0/n and n/n cells)."""
    from uio2_robot.eval.rollout import CellResult, EvalReport, write_report

    cells = []
    for task, s in (("a", 0), ("b", 100), ("c", 37)):
        low, high = wilson_interval(s, 100)
        cells.append(CellResult(task, "L1", 100, s, s / 100, low, high))
    report = EvalReport("p", "primitive", cells, [], 0.0)
    write_report(report, tmp_path)
    assert (tmp_path / "success.png").stat().st_size > 0
    assert (tmp_path / "eval_info.json").is_file()

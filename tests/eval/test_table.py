"""The rollout table prints VIMA-200M's published success beside ours."""

from __future__ import annotations

from uio2_robot.eval.rollout import CellResult, EvalReport


def test_table_has_vima_200m_per_task_and_level() -> None:
    cells = [
        CellResult("twist", "L1", 10, 3, 0.3, 0.1, 0.6),
        CellResult("follow_motion", "L4", 10, 0, 0.0, 0.0, 0.3),
        CellResult("rotate", "L4", 10, 0, 0.0, 0.0, 0.3),  # VIMA has no rotate at L4: "-"
    ]
    lines = EvalReport("p", "primitive", cells, [], 0.0).table().splitlines()
    assert "VIMA-200M" in lines[0]
    twist = next(ln for ln in lines if ln.startswith("twist"))
    assert twist.rstrip().endswith("18.0%") and "30.0%" in twist
    assert next(ln for ln in lines if ln.startswith("rotate")).rstrip().endswith("-")
    means = [ln for ln in lines if ln.startswith("average (tasks)")]
    assert means[0].rstrip().endswith("81.5%") and means[1].rstrip().endswith("48.6%")

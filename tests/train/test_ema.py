"""The weight average: its warm-up, its arithmetic, swapping it in and out, and resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from uio2_robot.train.config import TrainConfig
from uio2_robot.train.ema import WeightAverage


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    model[1].requires_grad_(False)  # frozen: not averaged
    return model


def test_decay_warms_up_to_its_ceiling():
    ema = WeightAverage(_model(), 0.99)
    assert ema.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    ema.updates = 10_000
    assert ema.current_decay() == 0.99


def test_update_is_the_exponential_average_and_skips_frozen_weights():
    model = _model()
    ema = WeightAverage(model, 0.5)
    assert set(ema.shadow) == {"0.weight", "0.bias"}
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)  # decay min(0.5, 0.1) = 0.1: 10% old, 90% new
    torch.testing.assert_close(ema.shadow["0.weight"], start + 0.9)
    ema.updates = 100
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)  # decay 0.5 now
    torch.testing.assert_close(ema.shadow["0.weight"], 0.5 * (start + 0.9) + 0.5 * (start + 2.0))


def test_applied_swaps_the_average_in_and_restores_the_raw_weights():
    model = _model()
    ema = WeightAverage(model, 0.9)
    raw = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.mul_(3.0)
    trained = model[0].weight.detach().clone()
    with ema.applied(model):
        torch.testing.assert_close(model[0].weight.detach(), raw)
    torch.testing.assert_close(model[0].weight.detach(), trained)
    with pytest.raises(RuntimeError), ema.applied(model):
        raise RuntimeError("an evaluation that fails")
    torch.testing.assert_close(model[0].weight.detach(), trained)  # restored on error too


def test_state_round_trips_and_a_mismatched_state_is_refused():
    model = _model()
    ema = WeightAverage(model, 0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    other = WeightAverage(_model(), 0.9)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1
    torch.testing.assert_close(other.shadow["0.weight"], ema.shadow["0.weight"])
    with pytest.raises(ValueError, match=r"missing \['0.bias'\]"):
        other.load_state_dict({"updates": 1, "shadow": {"0.weight": ema.shadow["0.weight"]}})
    with pytest.raises(ValueError, match=r"unexpected \['1.weight'\]"):
        other.load_state_dict(
            {"updates": 1, "shadow": {**ema.shadow, "1.weight": ema.shadow["0.bias"]}}
        )


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5])
def test_a_decay_outside_zero_to_one_is_a_clear_error(decay):
    with pytest.raises(ValueError, match="ema_decay must be"):
        TrainConfig(stores=["x"], ema_decay=decay)

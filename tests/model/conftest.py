"""Shared tiny-model fixtures for the model tests."""

from __future__ import annotations

import pytest
import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs


@pytest.fixture(scope="module")
def tiny_cfg():
    return get_config("tiny")


@pytest.fixture(scope="module")
def tiny_model(tiny_cfg):
    torch.manual_seed(0)
    return UIO2Model(tiny_cfg).eval()


@pytest.fixture
def tiny_inputs(tiny_cfg):
    return random_encoder_inputs(tiny_cfg, 3, generator=torch.Generator().manual_seed(1))

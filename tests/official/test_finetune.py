"""Fine-tuning the imported tiny official model: full, ViT frozen, LoRA (merged on save)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.official.conftest import DATA
from uio2_robot.official.convert import import_release, load_official_checkpoint
from uio2_robot.official.finetune import (
    example_loss,
    finetune,
    plan_example,
    prepare_finetune,
    save_finetuned,
)

pytest.importorskip("sentencepiece")


@pytest.fixture()
def imported(release_dir, tmp_path):
    import_release(release_dir, tmp_path / "ckpt")
    return tmp_path / "ckpt"


@pytest.fixture(scope="module")
def batch():
    from safetensors.numpy import load_file

    from uio2_robot.model.official import OfficialConfig
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    fx = load_file(str(DATA / "fixture.safetensors"))
    cfg = OfficialConfig.from_release(json.loads((DATA / "config.json").read_text()))
    tok = OfficialTokenizer(DATA / "tokenizer_synthetic.model")
    actions = np.array([[0.6, -0.2, 0.0, 0.3, 0.4, 1.0], [0.5, 0.1, 0.5, 0.7, -0.3, 0.0]])
    history = [fx["raw/history0_uint8"], fx["raw/history1_uint8"]]
    return plan_example(
        tok, cfg, "Put the <image_history_1> into the <image_history_2> bowl.", history,
        fx["raw/image_uint8"], actions,
    )  # fmt: skip


def _vit_snapshot(model):
    return {k: v.detach().clone() for k, v in model.vit.state_dict().items()}


@pytest.mark.parametrize("mode", ["full", "frozen_vit", "lora"])
def test_each_mode_lowers_the_loss_and_trains_only_its_weights(imported, batch, mode, tmp_path):
    torch.manual_seed(0)
    model, processor, config = load_official_checkpoint(imported)
    vit_before = _vit_snapshot(model)
    core_before = model.encoder_layers[0].attn.wqkv.weight.detach().clone()
    n = prepare_finetune(model, mode, lora_rank=4)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < n <= total
    losses = finetune(model, [batch], steps=30, lr=2e-2)
    # LoRA (rank 4 on a width-16 model) trains ~2% of the weights: it moves the loss less
    assert losses[-1] < {"full": 0.5, "frozen_vit": 0.5, "lora": 0.8}[mode] * losses[0], losses
    vit_same = all(torch.equal(v, model.vit.state_dict()[k]) for k, v in vit_before.items())
    assert vit_same == (mode != "full")
    if mode == "lora":
        base = model.encoder_layers[0].attn.wqkv.base.weight
        assert torch.equal(base, core_before) and n < total // 10
    # the saved checkpoint (LoRA merged) loads as a plain imported model with the same loss
    save_finetuned(model, tmp_path / mode, config, processor)
    reloaded, _, _ = load_official_checkpoint(tmp_path / mode)
    with torch.no_grad():
        want = float(example_loss(model.eval(), batch).loss)
        got = float(example_loss(reloaded, batch).loss)
    assert abs(got - want) < 1e-4


def test_unknown_mode_is_a_usage_error(imported):
    from uio2_robot.errors import UsageError

    model, _, _ = load_official_checkpoint(imported)
    with pytest.raises(UsageError, match="expected one of"):
        prepare_finetune(model, "partial")

"""Fine-tuning an imported official model from a trajectory store (oracle episodes)."""

from __future__ import annotations

import json

import pytest

from tests.official.conftest import DATA
from uio2_robot.cli import main
from uio2_robot.official.convert import import_release, load_official_checkpoint
from uio2_robot.official.data import examples_from_stores, kind_of_task

pytest.importorskip("sentencepiece")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from uio2_robot.policies.factory import make_policy
    from uio2_robot.trajectories.collect import collect

    out = tmp_path_factory.mktemp("store") / "oracle.zarr"
    collect(["visual_manipulation"], ["L1"], 2, workers=0, out=out, image_size=64,
            progress=False, make_policy_fn=make_policy)  # fmt: skip
    return out


def test_store_episodes_become_plan_examples(store, release_dir):
    from uio2_robot.model.official import OfficialConfig
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    official = OfficialConfig.from_release(json.loads((release_dir / "config.json").read_text()))
    tok = OfficialTokenizer(DATA / "tokenizer_synthetic.model")
    examples = examples_from_stores([store], tok, official)
    assert 1 <= len(examples) <= 2
    ex = examples[0]
    text = tok.decode(ex["targets/text/targets"][0])
    assert text.startswith("0: pick from (") and "and place to (" in text
    assert ex["inputs/image_history/mask"][0].any()  # the prompt's images are history frames
    assert kind_of_task("sweep_without_exceeding") == "push"


def test_official_finetune_command_writes_a_loadable_checkpoint(
    store, release_dir, tmp_path, capsys
):
    import_release(release_dir, tmp_path / "ckpt")
    out = tmp_path / "tuned"
    args = ["official", "finetune", f"src={tmp_path / 'ckpt'}", f"out={out}", f"stores=[{store}]",
            f"tokenizer={DATA / 'tokenizer_synthetic.model'}", "mode=frozen_vit", "steps=6",
            "lr=0.01"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["loss_last"] < report["loss_first"]
    model, _, config = load_official_checkpoint(out)
    assert config["finetune"]["mode"] == "frozen_vit" and config["finetune"]["examples"] >= 1

"""The key table covers the released large / xl / xxl state dicts (shapes only, meta device)."""

from __future__ import annotations

import json
import math

import pytest

from tests.official.conftest import DATA
from uio2_robot.model.official.config import RELEASED
from uio2_robot.official.keymap import plan_mapping
from uio2_robot.official.release import project_shapes

MANIFEST = json.loads((DATA / "official_state_dict_manifest.json").read_text())


@pytest.mark.parametrize("size", ["large", "xl", "xxl"])
def test_every_released_key_is_used_or_deliberately_dropped(size):
    keys = {k: tuple(v) for k, v in MANIFEST[size]["keys"].items()}
    assert len(keys) == {"large": 1625, "xl": 1625, "xxl": 1621}[size]
    shapes = project_shapes(RELEASED[size])  # meta device: no weights allocated
    plan = plan_mapping(keys, shapes, f"manifest[{size}]")
    used, dropped = plan.used, set(plan.dropped)
    assert used | dropped == set(keys) and not used & dropped
    assert {t.key for t in plan.targets} == set(shapes)  # every model weight has a source
    # what is dropped is audio, the VQGANs and the image/audio output token tables only
    roots = {".".join(k.split(".")[:2]) for k in dropped}
    assert roots == {
        "image_token_embedder.weight", "audio_token_embedder.weight", "input_embedders.audio",
        "input_embedders.audio_history", "target_embedders.image", "target_embedders.audio",
    }  # fmt: skip
    n_used = sum(math.prod(keys[k]) for k in used)
    n_model = sum(math.prod(s) for s in shapes.values())
    assert n_used == n_model
    if size == "xxl":
        assert any(k.endswith("xattention.logit_scale") for k in used)
    else:
        assert any(k.endswith("xattention.query_norm.scale") and "image_history" in k for k in used)

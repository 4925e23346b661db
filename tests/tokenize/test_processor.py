import json

import numpy as np
import pytest

from uio2_robot.envs import spaces
from uio2_robot.tokenize.processor import Processor


def _proc(**kw) -> Processor:
    args = {
        "image_size": 16,
        "prompt_image_size": 8,
        "max_prompt_tokens": 32,
        "max_prompt_images": 2,
        "max_history": 3,
    }
    args.update(kw)
    return Processor.for_suite(n_bins=256, **args)


def _obs(value: int = 0, proprio=None) -> dict:
    return {
        "front": np.full((48, 64, 3), value, np.uint8),
        "top": np.full((48, 64, 3), 255 - value, np.uint8),
        "proprio": np.arange(6, dtype=np.float32) if proprio is None else proprio,
    }


def test_encode_observation_shapes_and_history_alignment():
    proc = _proc()
    out = proc.encode_observation(_obs(0), history=[_obs(255), _obs(0)])
    assert out["obs_images"].shape == (2, 3, 16, 16) and out["obs_images"].dtype == np.float32
    np.testing.assert_allclose(out["obs_images"][0], -1.0)
    np.testing.assert_allclose(out["obs_images"][1], 1.0)
    assert out["history_images"].shape == (3, 2, 3, 16, 16)
    # right-aligned: the most recent past frame is the last slot, padding first
    assert out["history_mask"].tolist() == [False, True, True]
    np.testing.assert_allclose(out["history_images"][1, 0], 1.0)
    np.testing.assert_allclose(out["history_images"][2, 0], -1.0)
    assert not out["history_images"][0].any()
    # longer history keeps the last max_history frames; preprocessed frames are accepted
    frames = [proc.encode_frame(_obs(v)) for v in (10, 20, 30, 40)]
    out2 = proc.encode_observation(_obs(0), history=frames)
    assert out2["history_mask"].all()
    np.testing.assert_array_equal(out2["history_images"], np.stack(frames[1:]))
    np.testing.assert_allclose(out["proprio"], np.arange(6))  # zero mean, unit std


def test_proprio_stats_and_errors():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(500, 6))
    data[:, 5] = 1.0  # constant flag: std floored, not zero
    proc = _proc().with_proprio_stats(data.mean(0), data.std(0))
    p = proc.normalize_proprio(data[0])
    np.testing.assert_allclose(
        p[:5], (data[0, :5] - data[:, :5].mean(0)) / data[:, :5].std(0), rtol=1e-5
    )
    assert p[5] == 0.0
    with pytest.raises(ValueError, match=r"must be \(6,\) each"):
        _proc().with_proprio_stats(data.mean(0)[:5], data.std(0))
    with pytest.raises(ValueError, match="NaN or Inf"):
        _proc().with_proprio_stats(np.full(6, np.nan), data.std(0))
    with pytest.raises(ValueError, match=r"obs\['proprio'\] contains NaN"):
        proc.encode_observation(_obs(0, proprio=np.array([0, 0, np.nan, 0, 0, 0.0])))
    with pytest.raises(ValueError, match=r"obs\['proprio'\] must be a \(6,\)"):
        proc.encode_observation(_obs(0, proprio=np.zeros(5)))


@pytest.mark.parametrize(
    "key, value, match",
    [
        (
            "front",
            np.zeros((48, 64, 3), np.float32),
            r"obs\['front'\] must have dtype uint8, got float32",
        ),
        (
            "top",
            np.zeros((48, 64), np.uint8),
            r"obs\['top'\] must have shape \(h, w, 3\).*got \(48, 64\)",
        ),
        ("top", None, r"obs has no camera image 'top'"),
    ],
)
def test_bad_images_name_the_key(key, value, match):
    obs = _obs()
    if value is None:
        del obs[key]
    else:
        obs[key] = value
    with pytest.raises(ValueError, match=match):
        _proc().encode_observation(obs)


def test_bad_history_entry():
    proc = _proc()
    with pytest.raises(ValueError, match=r"history\[0\]"):
        proc.encode_observation(_obs(), history=[np.zeros((2, 3, 8, 8), np.float32)])
    bad = _obs()
    bad["front"] = bad["front"][..., :1]
    with pytest.raises(ValueError, match=r"history\[1\]\['front'\]"):
        proc.encode_observation(_obs(), history=[_obs(), bad])


def test_collate_matches_encoder_input_names():
    from uio2_robot.model.inputs import PROMPT_FIELDS, EncoderInputs
    from uio2_robot.tokenize.processor import PROMPT_KEYS

    assert PROMPT_KEYS == PROMPT_FIELDS  # the torch-free processor spells them out
    proc = _proc()
    prompt = ["Put the ", np.full((10, 10, 3), 7, np.uint8), " in."]
    examples = [proc.encode_inputs(prompt, _obs(v), [_obs(v)]) for v in (0, 100, 200)]
    batch = proc.collate(examples)
    assert set(batch) == set(EncoderInputs.names())
    assert batch["tokens"].shape == (3, 32)
    assert batch["history_images"].shape == (3, 3, 2, 3, 16, 16)
    examples[1]["tokens"] = examples[1]["tokens"][:5]
    with pytest.raises(ValueError, match="cannot collate 'tokens': example 1"):
        proc.collate(examples)
    with pytest.raises(ValueError, match="keys"):
        proc.collate([examples[0], {"tokens": examples[0]["tokens"]}])


def test_action_tokens_round_trip_chunked():
    proc = _proc(action_horizon=2)
    tok = proc.action_tokenizer("delta")
    rng = np.random.default_rng(1)
    chunk = rng.uniform(tok.low, tok.high, size=(2, 5))
    ids = proc.action_target_tokens(chunk, "delta")
    assert ids.shape == (10,) and ids.dtype == np.int64
    assert np.isin(ids, proc.allowed_action_ids("delta")).all()
    assert proc.n_action_tokens("delta") == 10
    back = proc.decode_actions(ids, "delta")
    assert back.shape == (2, 5)
    assert np.all(np.abs(back - chunk) <= tok.bin_width / 2 + 1e-6)
    batched = proc.decode_actions(np.stack([ids, ids]), "delta")
    assert batched.shape == (2, 2, 5)
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        proc.action_target_tokens(chunk[0], "delta")
    with pytest.raises(ValueError, match="multiple of 5"):
        proc.decode_actions(ids[:7], "delta")
    with pytest.raises(ValueError, match="unknown action mode"):
        proc.action_target_tokens(chunk, "joint")
    # default mode is the first one (primitive, 6 dims)
    assert proc.action_tokenizer().names == spaces.PRIMITIVE_ACTION_NAMES


def test_decode_text_stops_at_eos():
    proc = _proc()
    v = proc.vocab
    ids = [v.bos_id, *proc.text_tokenizer.encode("pick"), v.bin_id(3), v.eos_id, 65]
    assert proc.decode_text(ids) == "pick"


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    proprio = rng.normal(size=(50, 6))
    proc = _proc(action_horizon=2).with_proprio_stats(proprio.mean(0), proprio.std(0))
    path = proc.save(tmp_path / "ckpt" / "processor.json")
    loaded = Processor.load(path)
    assert loaded == proc
    assert loaded.vocab == proc.vocab and loaded.image_size == (16, 16)
    obs = _obs(50, proprio=rng.normal(size=6))
    prompt = ["go ", np.full((5, 9, 3), 3, np.uint8)]
    a, b = proc.encode_inputs(prompt, obs, [obs]), loaded.encode_inputs(prompt, obs, [obs])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    acts = rng.uniform(-0.04, 0.04, size=(2, 5))
    np.testing.assert_array_equal(
        proc.action_target_tokens(acts, "delta"), loaded.action_target_tokens(acts, "delta")
    )


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        Processor.load(tmp_path / "missing.json")
    d = _proc().to_dict()
    d["format_version"] = 99
    with pytest.raises(ValueError, match="format_version"):
        Processor.from_dict(d)
    d = _proc().to_dict()
    d["extra"] = 1
    with pytest.raises(ValueError, match="unknown keys"):
        Processor.from_dict(json.loads(json.dumps(d)))
    with pytest.raises(ValueError, match="image markers"):
        _proc(max_prompt_images=9)


def test_crop_keeps_only_the_region_of_interest():
    proc = _proc(camera_keys=("top",), crops={"top": (0.25, 0.0, 0.75, 0.5)}, frame_size=(48, 64))
    frame = np.zeros((48, 64, 3), np.uint8)
    frame[12:36, :32] = 255  # exactly the crop box: white
    out = proc.encode_frame({"top": frame})
    np.testing.assert_allclose(out, 1.0)  # nothing of the black surround survives
    uncropped = _proc(camera_keys=("top",)).encode_frame({"top": frame})
    assert uncropped.min() < 0


def test_crop_round_trips_and_old_files_without_it_still_load(tmp_path):
    proc = _proc(crops={"top": [0.1, 0.0, 0.9, 1.0]}, frame_size=(128, 128))
    back = Processor.load(proc.save(tmp_path / "p.json"))
    assert back == proc and back.crops == {"top": (0.1, 0.0, 0.9, 1.0)}
    assert back.frame_size == (128, 128)
    old = proc.to_dict()
    del old["crops"], old["frame_size"]
    legacy = Processor.from_dict(old)
    assert legacy.crops == {} and legacy.frame_size is None


@pytest.mark.parametrize(
    "crops, message",
    [
        ({"top": (0.5, 0.0, 0.4, 1.0)}, "0 <= top < bottom <= 1"),
        ({"top": (0.0, 0.0, 1.0)}, "must be 4 fractions"),
        ({"wrist": (0.0, 0.0, 1.0, 1.0)}, "not in camera_keys"),
    ],
)
def test_bad_crops_are_refused(crops, message):
    with pytest.raises(ValueError, match=message):
        _proc(crops=crops)


def test_point_targets_map_pick_and_place_points_to_patches():
    # identity-like map: row = x, col = y on a 2 x 4 grid per view; the top view is view 1
    proc = _proc(point_maps={"top": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)})
    action = np.array([0.6, 0.3, 0.0, 0.1, 0.9, 0.0])
    idx = proc.point_targets(action, "primitive", (2, 4))
    assert idx.tolist() == [8 + 1 * 4 + 1, 8 + 0 * 4 + 3]  # view offset 8, (row, col)
    outside = proc.point_targets(np.array([1.5, 0.3, 0, 0.1, -0.2, 0]), "primitive", (2, 4))
    assert outside.tolist() == [-1, -1]
    assert proc.point_targets(action, "delta", (2, 4)).tolist() == [-1, -1]
    assert _proc().point_targets(action, "primitive", (2, 4)).tolist() == [-1, -1]
    with pytest.raises(ValueError, match="6 finite floats"):
        _proc(point_maps={"top": (1.0, 0.0, float("nan"), 0.0, 1.0, 0.0)})


def _scene_proc(**kw) -> Processor:
    args = {
        "camera_keys": ("top", "front"),
        "crops": {"top": (0.25, 0.0, 0.75, 1.0)},
        "frame_size": (48, 64),
        "max_prompt_scenes": 1,
        "scene_camera": "top",
    }
    args.update(kw)
    return _proc(**args)


def test_a_frame_sized_prompt_image_is_also_a_scene_on_the_observation_grid():
    proc = _scene_proc()
    scene = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    crop = np.full((8, 8, 3), 7, np.uint8)  # an object picture: not a scene
    out = proc.encode_prompt(["put ", crop, " as in ", scene, "."])
    assert out["prompt_image_mask"].tolist() == [True, True]  # both keep their prompt slot
    assert out["scene_image_mask"].tolist() == [True]
    assert out["scene_image_index"].tolist() == [1]  # it repeats prompt image 1
    # exactly the preprocessing (crop + resize) of a top-camera observation
    want = proc.encode_frame({"front": scene, "top": scene})[0]
    np.testing.assert_array_equal(out["scene_images"][0], want)
    none = proc.encode_prompt(["put ", crop, "."])
    assert not none["scene_image_mask"].any() and not none["scene_images"].any()
    # a processor without scene slots returns empty scene arrays, whatever the prompt
    plain = _proc(frame_size=(48, 64)).encode_prompt(["as in ", scene])
    assert plain["scene_images"].shape == (0, 3, 16, 16)


def test_scenes_past_the_slots_or_cut_from_the_prompt_are_not_encoded():
    proc = _scene_proc(max_prompt_tokens=8, prompt_overflow="truncate")
    a, b = (np.full((48, 64, 3), v, np.uint8) for v in (10, 200))
    out = proc.encode_prompt([a, b])
    assert out["scene_image_index"].tolist() == [0]  # one slot: the first scene
    cut = proc.encode_prompt(["x" * 20, a])  # the marker is truncated away, so is the scene
    assert not cut["prompt_image_mask"].any() and not cut["scene_image_mask"].any()


def test_scene_settings_round_trip_and_bad_ones_are_refused(tmp_path):
    proc = _scene_proc()
    back = Processor.load(proc.save(tmp_path / "p.json"))
    assert back == proc and back.max_prompt_scenes == 1 and back.scene_key == "top"
    old = proc.to_dict()
    del old["max_prompt_scenes"], old["scene_camera"]
    assert Processor.from_dict(old).max_prompt_scenes == 0  # files written before scenes
    with pytest.raises(ValueError, match="needs frame_size"):
        _proc(max_prompt_scenes=1)
    with pytest.raises(ValueError, match="exceeds max_prompt_images"):
        _scene_proc(max_prompt_scenes=3)
    with pytest.raises(ValueError, match="must be the first of camera_keys"):
        _scene_proc(scene_camera="front")  # the model tags scenes as view 0


def test_view_turns_read_a_turned_camera_as_the_trained_one(tmp_path):
    """A camera mounted 180 deg from the training one: with view_turns its frames (and prompt
    scenes), and with prompt_turns its prompt images, encode exactly like the trained view's."""
    rng = np.random.default_rng(0)
    obs = {
        "front": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        "top": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),
        "proprio": np.zeros(6, np.float32),
    }
    turned = {**obs, "top": np.rot90(obs["top"], 2)}
    crop = {"top": (0.1, 0.0, 0.9, 0.8)}  # asymmetric: a turn before the crop matters
    plain = _proc(crops=crop)
    turning = _proc(crops=crop, view_turns={"top": 2}, prompt_turns=2)
    np.testing.assert_array_equal(
        turning.encode_observation(turned)["obs_images"],
        plain.encode_observation(obs)["obs_images"],
    )
    assert not np.array_equal(
        plain.encode_observation(turned)["obs_images"], plain.encode_observation(obs)["obs_images"]
    )
    picture = rng.integers(0, 256, (20, 12, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        turning.encode_prompt(["put ", np.rot90(picture, 2)])["prompt_images"],
        plain.encode_prompt(["put ", picture])["prompt_images"],
    )
    again = Processor.load(turning.save(tmp_path / "processor.json"))
    assert again == turning and again.view_turns == {"top": 2} and again.prompt_turns == 2
    with pytest.raises(ValueError, match="quarter turns"):
        _proc(view_turns={"top": 5})
    with pytest.raises(ValueError, match="not in camera_keys"):
        _proc(view_turns={"side": 1})

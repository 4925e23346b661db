import numpy as np
import pytest

from uio2_robot.tokenize.vocab import Vocabulary


def test_layout_bins_contiguous_after_sentinels():
    v = Vocabulary(text_size=256)
    assert v.sentinel_id(0) == 256
    assert v.sentinel_id(199) == 455
    assert v.bin_id(0) == v.sentinel_id(199) + 1  # <extra_id_200> follows <extra_id_199>
    assert np.array_equal(v.bin_ids, np.arange(456, 1456))
    assert np.all(np.diff(v.bin_ids) == 1)
    # modality, paradigm, markers and specials follow the bins, all distinct, all < size
    others = [v.modality_id(m) for m in v.modalities] + [v.paradigm_id(p) for p in v.paradigms]
    others += v.image_marker_ids.tolist() + [v.bos_id, v.pad_id, v.eos_id]
    assert min(others) == v.bin_ids[-1] + 1
    assert len(set(others)) == len(others)
    assert max(others) == v.size - 1
    assert v.size == 256 + 200 + 1000 + 4 + 3 + 8 + 3


def test_uio2_text_size_keeps_llama_ids():
    v = Vocabulary(text_size=32000)
    assert v.sentinel_id(0) == 32000
    assert v.bin_id(0) == 32200
    assert v.bin_id(999) == 33199


def test_model_config_constants_agree():
    from uio2_robot.model import config

    assert Vocabulary(256).size == config.BYTE_VOCAB_SIZE
    assert Vocabulary(256).image_marker_id(0) == config.BYTE_IMAGE_MARKER_ID
    assert Vocabulary(32000).size == config.UIO2_VOCAB_SIZE
    assert Vocabulary(32000).image_marker_id(0) == config.UIO2_IMAGE_MARKER_ID


def test_names_and_classification():
    v = Vocabulary(text_size=256, n_bins=256, n_image_markers=4)
    assert v.token_name(65) == "<text_65>"
    assert v.token_name(v.sentinel_id(3)) == "<extra_id_3>"
    assert v.token_name(v.bin_id(7)) == "<bin_7>"
    assert v.token_name(v.paradigm_id("X")) == "[X]"
    assert v.token_name(v.modality_id("action")) == "[Action]"
    assert v.token_name(v.image_marker_id(2)) == "<img_2>"
    assert v.token_name(v.eos_id) == "<eos>"
    assert v.is_bin(v.bin_ids).all() and not v.is_bin([v.sentinel_id(199), v.bos_id]).any()
    assert v.is_text([0, 255]).all() and not v.is_text([256]).any()


def test_round_trip_dict():
    v = Vocabulary(text_size=300, n_bins=256, n_image_markers=5)
    assert Vocabulary.from_dict(v.to_dict()) == v


@pytest.mark.parametrize(
    "call",
    [
        lambda v: v.bin_id(1000),
        lambda v: v.bin_id(-1),
        lambda v: v.sentinel_id(200),
        lambda v: v.image_marker_id(8),
        lambda v: v.paradigm_id("Q"),
        lambda v: v.modality_id("audio"),
        lambda v: v.token_name(v.size),
    ],
)
def test_out_of_range_raises(call):
    with pytest.raises(ValueError):
        call(Vocabulary(256))


def test_bad_construction_and_dict():
    with pytest.raises(ValueError, match="text_size"):
        Vocabulary(text_size=0)
    with pytest.raises(ValueError, match="paradigms"):
        Vocabulary(text_size=10, paradigms=("R", "R"))
    d = Vocabulary(256).to_dict()
    d["size"] = 5
    with pytest.raises(ValueError, match="size"):
        Vocabulary.from_dict(d)

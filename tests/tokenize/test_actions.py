import json
import math

import numpy as np
import pytest

from uio2_robot.envs import spaces
from uio2_robot.tokenize.actions import ActionTokenizer
from uio2_robot.tokenize.vocab import Vocabulary
from uio2_robot.trajectories.stats import compute_norm_stats

VOCAB = Vocabulary(text_size=256)


@pytest.mark.parametrize("mode", spaces.ACTION_MODES)
@pytest.mark.parametrize("n_bins", [1000, 256])
def test_round_trip_within_half_bin(mode, n_bins):
    tok = ActionTokenizer.for_action_mode(mode, VOCAB, n_bins=n_bins)
    rng = np.random.default_rng(0)
    low, high = tok.low, tok.high
    acts = rng.uniform(low, high, size=(2000, tok.dim))
    ids = tok.encode(acts)
    assert ids.shape == acts.shape and ids.dtype == np.int64
    assert ids.min() >= VOCAB.bin_id(0) and ids.max() <= VOCAB.bin_id(n_bins - 1)
    back = tok.decode(ids)
    assert back.dtype == np.float32
    err = np.abs(back - acts)
    assert np.all(err <= tok.bin_width / 2 + 1e-6)
    report = tok.round_trip_report(acts)
    assert list(report) == list(spaces.action_names(mode))
    for i, name in enumerate(tok.names):
        assert report[name]["max_abs"] <= tok.bin_width[i] / 2 + 1e-6
        assert 0 < report[name]["mean_abs"] < report[name]["max_abs"]
        assert report[name]["clipped_fraction"] == 0.0


def test_exact_clipping():
    tok = ActionTokenizer.uniform(["a", "b"], [0.0, -1.0], [1.0, 1.0], VOCAB, n_bins=10)
    first, last = VOCAB.bin_id(0), VOCAB.bin_id(9)
    ids = tok.encode(np.array([[-5.0, -1.0], [1.0, 0.999999], [7.0, 1.0], [0.0, -1.5]]))
    assert ids.tolist() == [[first, first], [last, last], [last, last], [first, first]]
    # decode returns the end bins' centres, never the out-of-range values
    back = tok.decode(ids)
    np.testing.assert_allclose(back[0], [0.05, -0.9], atol=1e-6)
    np.testing.assert_allclose(back[2], [0.95, 0.9], atol=1e-6)
    # bin edges: a value on an interior edge belongs to the bin above it
    assert tok.bin_indices(np.array([0.1, 0.0]))[0] == 1
    report = tok.round_trip_report(np.array([[-5.0, 0.0], [0.5, 0.0]]))
    assert report["a"]["clipped_fraction"] == 0.5
    assert report["a"]["max_abs"] == pytest.approx(5.05)


def test_yaw_wraps_instead_of_clipping():
    tok = ActionTokenizer.for_action_mode("primitive", VOCAB, n_bins=256)
    assert tok.wrap == (False, False, True, False, False, True)
    base = np.array([0.5, 0.0, 0.0, 0.5, 0.0, 0.0])
    a, b = base.copy(), base.copy()
    a[2], b[2] = math.pi + 0.1, -math.pi + 0.1
    a[5], b[5] = -math.pi - 0.2, math.pi - 0.2
    assert np.array_equal(tok.encode(a), tok.encode(b))
    # pi itself is the same angle as -pi: first bin, not the last
    c = base.copy()
    c[2] = math.pi
    assert tok.encode(c)[2] == VOCAB.bin_id(0)
    # the circular error of wrapped values is still within half a bin
    rng = np.random.default_rng(1)
    acts = np.tile(base, (500, 1))
    acts[:, 2] = rng.uniform(-3 * math.pi, 3 * math.pi, 500)
    rep = tok.round_trip_report(acts)
    assert rep["yaw0"]["max_abs"] <= tok.bin_width[2] / 2 + 1e-6
    assert rep["yaw0"]["clipped_fraction"] == 0.0
    # delta mode's dyaw is a bounded increment: clipped, not wrapped
    delta = ActionTokenizer.for_action_mode("delta", VOCAB)
    assert not any(delta.wrap)


def test_fit_percentiles():
    rng = np.random.default_rng(2)
    data = np.stack([rng.normal(0.0, 1.0, 10000), np.full(10000, 0.7)], axis=1)
    data[:5, 0] = 1000.0  # outliers must not stretch the range
    stats = compute_norm_stats(data)  # the store's statistics
    tok = ActionTokenizer.from_percentiles(stats.p01, stats.p99, ["x", "const"], VOCAB, n_bins=256)
    assert tok.low[0] == pytest.approx(np.percentile(data[:, 0], 1))
    assert tok.high[0] == pytest.approx(np.percentile(data[:, 0], 99))
    assert tok.high[0] < 3.0
    assert tok.decode(tok.encode(np.array([0.0, 0.7])))[1] == pytest.approx(0.7, abs=1e-5)
    assert tok.encode(np.array([1000.0, 0.7]))[0] == VOCAB.bin_id(255)
    both = compute_norm_stats(np.c_[data[:, :1], rng.uniform(-1, 1, 10000)])
    wrapped = ActionTokenizer.from_percentiles(
        both.p01, both.p99, ["x", "yaw"], VOCAB, wrap_bounds={"yaw": (-math.pi, math.pi)}
    )
    assert wrapped.wrap == (False, True)
    assert wrapped.low[1] == -math.pi and wrapped.high[1] == math.pi
    with pytest.raises(ValueError, match=r"\(2,\) each"):
        ActionTokenizer.from_percentiles(stats.p01[:1], stats.p99, ["x", "const"], VOCAB)
    with pytest.raises(ValueError, match="low <= high"):
        ActionTokenizer.from_percentiles(stats.p99, stats.p01, ["x", "const"], VOCAB)


def test_serialisation_round_trip():
    stats = compute_norm_stats(np.random.default_rng(3).normal(size=(100, 3)))
    tok = ActionTokenizer.from_percentiles(stats.p01, stats.p99, ["a", "b", "c"], VOCAB, n_bins=256)
    again = ActionTokenizer.from_dict(json.loads(json.dumps(tok.to_dict())))
    assert again == tok
    x = np.random.default_rng(4).normal(size=(50, 3))
    assert np.array_equal(again.encode(x), tok.encode(x))


def test_bad_inputs():
    tok = ActionTokenizer.for_action_mode("delta", VOCAB)
    good = np.zeros(5)
    with pytest.raises(ValueError, match="NaN or Inf"):
        tok.encode(np.array([0.0, np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        tok.encode(np.array([0.0, 0.0, np.inf, 0.0, 0.0]))
    with pytest.raises(ValueError, match="trailing dimension 5"):
        tok.encode(np.zeros(6))
    with pytest.raises(ValueError, match="trailing dimension 5"):
        tok.decode(tok.encode(good)[:4])
    with pytest.raises(ValueError, match="value bins"):
        tok.decode(np.array([65, *tok.encode(good)[1:]]))
    with pytest.raises(ValueError, match="integers"):
        tok.decode(np.zeros(5))
    with pytest.raises(ValueError, match="n_bins"):
        ActionTokenizer.uniform(["a"], [0.0], [1.0], VOCAB, n_bins=2000)
    with pytest.raises(ValueError, match="high > low"):
        ActionTokenizer.uniform(["a"], [1.0], [1.0], VOCAB)
    with pytest.raises(ValueError, match="unknown action mode"):
        ActionTokenizer.for_action_mode("joint", VOCAB)

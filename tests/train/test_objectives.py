import dataclasses

import numpy as np
import pytest
import torch

from uio2_robot.model.config import get_config
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.tokenize import Processor
from uio2_robot.tokenize.prompt import PREFIX_LEN
from uio2_robot.train.batching import (
    batch_to_torch,
    check_processor_matches_model,
    encoder_inputs_from_numpy,
    processor_sizes,
)
from uio2_robot.train.config import TERMS, MixtureConfig
from uio2_robot.train.masking import (
    dynamic_self_attn_mask,
    random_patch_mask,
    shift_right,
    span_corrupt,
    span_noise_mask,
)
from uio2_robot.train.objectives import compute_losses

CFG = get_config("tiny")


def _processor() -> Processor:
    return Processor.for_suite(n_bins=256, **processor_sizes(CFG))


def _batch(proc: Processor, n: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        crop = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        prompt = [["Put ", crop, " in bowl"], ["push it"], ["a", crop, "b", crop]][i % 3]
        frame = {k: rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for k in ("front", "top")}
        obs = {**frame, "proprio": rng.normal(size=6)}
        ex = proc.encode_inputs(prompt, obs, [frame] * (i % 3))
        ex["action_tokens"] = proc.action_target_tokens(rng.uniform(-0.3, 0.6, 6))
        examples.append(ex)
    return proc.collate(examples)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    proc = _processor()
    return proc, UIO2Model(CFG), _batch(proc)


# ---- masking primitives --------------------------------------------------------------------
def test_shift_right():
    t = torch.tensor([[5, 6, 7]])
    assert shift_right(t, 1).tolist() == [[1, 5, 6]]


def test_dynamic_mask_rule():
    hidden = torch.tensor([[False, True, False, False], [False, False, False, False]])
    m = dynamic_self_attn_mask(hidden)
    assert m.shape == (2, 4, 4) and m.dtype == torch.bool
    # target 1 is hidden -> input position 2 carries it: only query 2 may read key 2
    expected = torch.tensor(
        [
            [1, 0, 0, 0],
            [1, 1, 0, 0],
            [1, 1, 1, 0],
            [1, 1, 0, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(m[0], expected)
    assert torch.equal(m[1], torch.ones(4, 4, dtype=torch.bool).tril())  # nothing hidden: causal
    with pytest.raises(ValueError, match="bool"):
        dynamic_self_attn_mask(hidden.long())


def test_dynamic_mask_hides_token_from_later_steps(setup):
    """Changing a hidden target changes nothing after it; changing a visible one does."""
    proc, model, batch = setup
    enc = model.encode(encoder_inputs_from_numpy(batch))
    targets = torch.as_tensor(batch["action_tokens"])  # (B, 6)
    hidden = torch.zeros_like(targets, dtype=torch.bool)
    hidden[:, 2] = True
    mask = dynamic_self_attn_mask(hidden)
    base = model.decode(shift_right(targets, proc.vocab.bos_id), enc, self_attn_mask=mask)
    for j, is_hidden in ((2, True), (1, False)):
        changed = targets.clone()
        changed[:, j] = (
            proc.vocab.bin_id(200)
            if targets[0, j] != proc.vocab.bin_id(200)
            else proc.vocab.bin_id(7)
        )
        out = model.decode(shift_right(changed, proc.vocab.bos_id), enc, self_attn_mask=mask)
        later = slice(j + 2, None)  # positions after the one that carries target j
        same = torch.allclose(out[:, later], base[:, later], atol=1e-6)
        assert same == is_hidden
        assert torch.allclose(out[:, : j + 1], base[:, : j + 1], atol=1e-6)  # causality


def test_random_patch_mask_counts():
    m = random_patch_mask(4, 2, 16, 0.5, torch.Generator().manual_seed(0))
    assert m.shape == (4, 2, 16) and m.dtype == torch.bool
    assert (m.sum(-1) == 8).all()
    assert not torch.equal(m[0, 0], m[1, 0])  # independent per example
    with pytest.raises(ValueError, match="ratio"):
        random_patch_mask(1, 1, 4, 1.0, torch.Generator())


@pytest.mark.parametrize(
    "length, rate, span", [(40, 0.5, 8.0), (30, 0.15, 3.0), (2, 0.5, 8.0), (1, 0.5, 3.0)]
)
def test_span_noise_mask_counts(length, rate, span):
    g = torch.Generator().manual_seed(1)
    m = span_noise_mask(length, rate, span, g)
    assert len(m) == length
    n_noise = sum(m)
    assert n_noise == (1 if length == 1 else max(1, min(round(length * rate), length - 1)))
    runs = sum(1 for i, x in enumerate(m) if x and (i == 0 or not m[i - 1]))
    assert runs == min(max(1, round(n_noise / span)), n_noise, length - n_noise + 1)


def test_span_corrupt_inverts():
    """Filling each sentinel of the input with its span from the target restores the row."""
    sentinels = list(range(1000, 1200))
    rng = np.random.default_rng(0)
    starts = set()
    for trial in range(20):
        row = rng.integers(0, 256, 30).tolist()
        corruptible = (rng.random(30) > 0.2).tolist()
        row = [t if c else 5000 + t for t, c in zip(row, corruptible, strict=True)]  # markers
        noise = span_noise_mask(sum(corruptible), 0.5, 3.0, torch.Generator().manual_seed(trial))
        inp, tgt = span_corrupt(row, corruptible, noise, sentinels)
        assert len(inp) < len(row) and tgt[0] == sentinels[0]
        starts.add(inp.index(sentinels[0]))
        spans, cur = {}, None
        for t in tgt:
            if t in sentinels:
                cur = t
                spans[cur] = []
            else:
                spans[cur].append(t)
        restored = [x for t in inp for x in spans.get(t, [t])]
        assert restored == row
        # markers are never corrupted
        assert [t for t in row if t >= 5000] == [t for t in inp if t >= 5000]
    assert 0 in starts and len(starts) > 3  # spans may start anywhere, the first item included


# ---- the mixture ---------------------------------------------------------------------------------
class _Spy(torch.nn.Module):
    """Wraps the model and records the prompt prefix each encoder pass saw."""

    def __init__(self, model):
        super().__init__()
        self.model, self.cfg, self.prefixes = model, model.cfg, []

    def _record(self, inputs):
        self.prefixes.append(inputs.tokens[:, :PREFIX_LEN].tolist())

    def encode(self, inputs, obs_patch_mask=None):
        self._record(inputs)
        return self.model.encode(inputs, obs_patch_mask)

    def embed(self, inputs, obs_patch_mask=None):
        self._record(inputs)
        return self.model.embed(inputs, obs_patch_mask)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)


PREFIX = {
    "s_action": ("S", "action"),
    "r_image": ("R", "image"),
    "x_text": ("X", "text"),
    "r_text": ("R", "text"),
    "s_text": ("S", "text"),
}


@pytest.mark.parametrize("term", TERMS)
def test_each_paradigm_finite_loss_gradients_and_prefix(setup, term):
    proc, model, batch = setup
    weights = {t: 0.0 for t in TERMS}
    weights[term] = 1.0
    cfg = MixtureConfig(**weights)
    spy = _Spy(model)
    model.zero_grad()
    out = compute_losses(spy, batch, cfg, torch.Generator().manual_seed(0), proc.vocab)
    assert set(out) >= {"loss", term}
    assert torch.isfinite(out["loss"]) and out["loss"].item() > 0
    assert torch.equal(out["loss"], out[term])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    if term == "r_image":
        assert model.recon_head.weight.grad.abs().sum() > 0
    # every encoder pass stated the paradigm and the target modality
    par, mod = PREFIX[term]
    want = [proc.vocab.paradigm_id(par), proc.vocab.modality_id(mod)]
    assert spy.prefixes and all(row == want for rows in spy.prefixes for row in rows)


def test_mixture_total_is_weighted_sum_and_reproducible(setup):
    proc, model, batch = setup
    cfg = MixtureConfig(s_action=1.0, r_image=0.5, x_text=0.25, r_text=0.25, s_text=0.1)
    a = compute_losses(model, batch, cfg, torch.Generator().manual_seed(3), proc.vocab)
    b = compute_losses(model, batch, cfg, torch.Generator().manual_seed(3), proc.vocab)
    total = sum(getattr(cfg, t) * a[t] for t in TERMS)
    assert torch.allclose(a["loss"], total)
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = compute_losses(model, batch, cfg, torch.Generator().manual_seed(4), proc.vocab)
    assert not torch.equal(a["x_text"], c["x_text"])  # the corruption is random
    assert 0.0 <= float(a["s_action_accuracy"]) <= 1.0


def test_text_terms_skip_batches_without_text(setup):
    proc, model, _ = setup
    rng = np.random.default_rng(5)
    obs = {
        "front": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "top": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        "proprio": np.zeros(6),
    }
    ex = proc.encode_inputs([rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)], obs)
    ex["action_tokens"] = proc.action_target_tokens(np.full(6, 0.4))
    batch = proc.collate([ex])
    out = compute_losses(model, batch, MixtureConfig(s_action=1, x_text=1), None, proc.vocab)
    assert "x_text" not in out and "s_action" in out
    with pytest.raises(ValueError, match="no active loss term"):
        compute_losses(
            model, batch, MixtureConfig(s_action=0, r_image=0, x_text=1), None, proc.vocab
        )


def test_constrained_decoding_only_emits_action_bins(setup):
    proc, model, batch = setup
    inputs = encoder_inputs_from_numpy(batch)
    allowed = torch.zeros(CFG.vocab_size, dtype=torch.bool)
    allowed[torch.from_numpy(proc.allowed_action_ids())] = True
    n = proc.n_action_tokens()
    greedy = model.generate(inputs, n, allowed=allowed, bos_id=proc.vocab.bos_id)
    sampled = model.generate(
        inputs,
        n,
        allowed=allowed,
        bos_id=proc.vocab.bos_id,
        greedy=False,
        temperature=5.0,
        generator=torch.Generator().manual_seed(0),
    )
    for out in (greedy, sampled):
        assert out.shape == (3, n)
        assert allowed[out].all()
    # unconstrained, an untrained model does emit other ids, so the constraint is doing the work
    free = model.generate(
        inputs,
        n,
        bos_id=proc.vocab.bos_id,
        greedy=False,
        temperature=5.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert not allowed[free].all()
    actions = proc.decode_actions(sampled.numpy())
    assert actions.shape == (3, 1, 6) and np.isfinite(actions).all()


def test_bad_inputs(setup):
    proc, model, batch = setup
    g = torch.Generator()
    cfg = MixtureConfig()
    no_targets = {k: v for k, v in batch.items() if k != "action_tokens"}
    with pytest.raises(ValueError, match="action_tokens"):
        compute_losses(model, no_targets, cfg, g, proc.vocab)
    bad = dict(batch)
    bad["tokens"] = batch["tokens"].copy()
    bad["tokens"][:, 0] = 65
    with pytest.raises(ValueError, match="paradigm"):
        compute_losses(model, bad, cfg, g, proc.vocab)
    bad = dict(batch)
    bad["action_tokens"] = batch["action_tokens"].copy()
    bad["action_tokens"][0, 0] = 10**6
    with pytest.raises(ValueError, match="target ids"):
        compute_losses(model, bad, cfg, g, proc.vocab)
    bad = dict(batch)
    bad["history_mask"] = batch["history_mask"].astype(np.float32)
    with pytest.raises(ValueError, match="history_mask.*bool"):
        compute_losses(model, bad, cfg, g, proc.vocab)
    with pytest.raises(ValueError, match="missing encoder inputs"):
        encoder_inputs_from_numpy({"tokens": batch["tokens"]})
    with pytest.raises(ValueError, match="weight"):
        MixtureConfig(s_action=-1.0)
    with pytest.raises(ValueError, match="at least one positive weight"):
        MixtureConfig(s_action=0.0, r_image=0.0)
    with pytest.raises(ValueError, match="patch_mask_ratio"):
        dataclasses.replace(cfg, patch_mask_ratio=1.5)


def test_batch_to_torch_dtypes(setup):
    proc, _, batch = setup
    t = batch_to_torch(batch)
    assert t["tokens"].dtype == torch.int64 and t["action_tokens"].dtype == torch.int64
    assert t["token_mask"].dtype == torch.bool and t["obs_images"].dtype == torch.float32
    inputs = encoder_inputs_from_numpy(batch)
    inputs.validate(CFG)


def test_processor_model_consistency():
    proc = _processor()
    check_processor_matches_model(proc, CFG)
    small = get_config("small")
    check_processor_matches_model(Processor.for_suite(**processor_sizes(small)), small)
    other = Processor.for_suite(n_bins=256, **{**processor_sizes(CFG), "max_history": 1})
    with pytest.raises(ValueError, match=r"max history: processor 1 vs model 2"):
        check_processor_matches_model(other, CFG)
    with pytest.raises(ValueError, match="vocab size"):
        check_processor_matches_model(proc, get_config("large"))


def test_split_assignment_uses_each_example_once():
    proc = _processor()
    torch.manual_seed(0)
    model = UIO2Model(CFG)
    batch = _batch(proc, n=6, seed=2)
    cfg = MixtureConfig(s_action=1.0, r_image=1.0, x_text=1.0, assignment="split")
    spy = _Spy(model)
    out = compute_losses(spy, batch, cfg, torch.Generator().manual_seed(0), proc.vocab)
    # one encoder pass per term that drew examples, together covering the batch exactly once
    assert sum(len(rows) for rows in spy.prefixes) == 6
    terms = [t for t in TERMS if t in out]
    assert len(terms) == len(spy.prefixes) >= 2
    assert torch.isfinite(out["loss"])
    sizes = [len(rows) for rows in spy.prefixes]
    expected = sum(n * out[t] for n, t in zip(sizes, terms, strict=True)) / 6
    assert torch.allclose(out["loss"], expected)
    with pytest.raises(ValueError, match="assignment"):
        MixtureConfig(assignment="sample")


def test_gaussian_bin_targets_spread_over_neighbours_and_keep_other_ids_one_hot():
    from uio2_robot.train.objectives import BinSmoothing, gaussian_bin_targets

    first, n, vocab_size = 10, 8, 30
    targets = torch.tensor([[10 + 3, 10 + 0, 2]])  # a middle bin, the first bin, a non-bin id
    soft = gaussian_bin_targets(targets, vocab_size, BinSmoothing(first, n, 0.75))
    assert soft.shape == (1, 3, vocab_size)
    torch.testing.assert_close(soft.sum(-1), torch.ones(1, 3))
    mid = soft[0, 0]
    assert int(mid.argmax()) == 13 and 0.4 < float(mid[13]) < 0.6
    torch.testing.assert_close(mid[12], mid[14])  # symmetric
    assert float(mid[:first].sum() + mid[first + n :].sum()) == 0.0  # only valid bins
    assert int(soft[0, 1].argmax()) == 10  # truncated at the edge, renormalised
    assert float(soft[0, 2, 2]) == 1.0


def test_bin_smoothing_makes_near_misses_cheaper_than_far_ones():
    from uio2_robot.train.objectives import BinSmoothing, masked_cross_entropy

    first, n = 10, 8
    targets = torch.tensor([[14]])
    mask = torch.ones_like(targets, dtype=torch.bool)
    near, far = torch.full((1, 1, 30), -5.0), torch.full((1, 1, 30), -5.0)
    near[0, 0, 15], far[0, 0, 10] = 5.0, 5.0  # predicts one bin off vs four bins off
    smooth = BinSmoothing(first, n, 1.0)
    loss_near = masked_cross_entropy(near, targets, mask, bin_smoothing=smooth).loss
    loss_far = masked_cross_entropy(far, targets, mask, bin_smoothing=smooth).loss
    assert float(loss_near) < float(loss_far)
    # plain CE cannot tell the two apart
    plain = [masked_cross_entropy(x, targets, mask).loss for x in (near, far)]
    torch.testing.assert_close(plain[0], plain[1])
    with pytest.raises(ValueError, match="action_bin_sigma"):
        MixtureConfig(action_bin_sigma=-1.0)


def test_pointing_term_rewards_the_patch_that_holds_the_point():
    from uio2_robot.train.batching import POINT_TARGETS

    cfg_model = CFG.replace(point_heads=2)
    proc = _processor()
    torch.manual_seed(0)
    model = UIO2Model(cfg_model)
    batch = _batch(proc, n=4, seed=3)
    batch[POINT_TARGETS] = np.array([[0, 5], [3, -1], [-1, -1], [7, 2]], dtype=np.int64)
    mix = MixtureConfig(s_action=1.0, r_image=0.0, point_weight=1.0)
    g = torch.Generator().manual_seed(0)
    with_points = compute_losses(model, batch, mix, g, proc.vocab)["loss"]
    without = compute_losses(model, batch, MixtureConfig(s_action=1.0, r_image=0.0), g, proc.vocab)[
        "loss"
    ]
    assert with_points.item() > without.item()  # the pointing CE (~log 2*16 patches) is added
    del batch[POINT_TARGETS]
    with pytest.raises(ValueError, match="point_targets"):
        compute_losses(model, batch, mix, g, proc.vocab)
    with pytest.raises(ValueError, match="does not support pack"):
        MixtureConfig(point_weight=1.0, pack=True)


def test_scene_pointing_scores_goal_scene_patches_from_the_picked_patch():
    from uio2_robot.train.batching import POINT_TARGETS, batch_to_torch, encoder_inputs_from_numpy
    from uio2_robot.train.objectives import PREFIXES, with_prefix

    cfg_model = CFG.replace(point_heads=2, max_prompt_scenes=1)
    proc = _processor()
    torch.manual_seed(0)
    model = UIO2Model(cfg_model)
    batch = _batch(proc, n=4, seed=3)
    rng = np.random.default_rng(0)
    batch["scene_images"] = rng.uniform(-1, 1, (4, 1, 3, 32, 32)).astype(np.float32)
    batch["scene_image_mask"] = np.array([[True], [True], [False], [True]])
    batch["scene_image_index"] = np.zeros((4, 1), dtype=np.int64)
    # place points: row 1 has none, row 3's is in view 1 (not the scene camera's view 0)
    batch[POINT_TARGETS] = np.array([[0, 5], [3, -1], [1, 2], [7, 16 + 2]], dtype=np.int64)
    g = torch.Generator().manual_seed(0)
    plain = MixtureConfig(s_action=1.0, r_image=0.0, point_weight=1.0)
    scene = MixtureConfig(s_action=1.0, r_image=0.0, point_weight=1.0, scene_point_weight=2.0)
    base = compute_losses(model, batch, plain, g, proc.vocab)["loss"]
    total = compute_losses(model, batch, scene, g, proc.vocab)["loss"]
    # only row 0 counts: it has a scene and a place point in view 0 (patch 5)
    with torch.no_grad():
        inputs = encoder_inputs_from_numpy(batch_to_torch(batch, torch.device("cpu")))
        inp = with_prefix(inputs, *PREFIXES["s_action"], proc.vocab)
        enc = model.encode(inp)
        scores = model.scene_point_logits(enc, torch.tensor([0, 3, 1, 7]))
    # row 0's pick patch (0) scores the scene's patches; its place patch (5) is the target
    expected = torch.nn.functional.cross_entropy(scores[:1], torch.tensor([5]))
    torch.testing.assert_close(total - base, 2.0 * expected, rtol=1e-4, atol=1e-5)
    batch["scene_image_mask"][:] = False  # no scene anywhere: the term adds nothing
    none = compute_losses(model, batch, scene, g, proc.vocab)["loss"]
    torch.testing.assert_close(none, compute_losses(model, batch, plain, g, proc.vocab)["loss"])
    with pytest.raises(ValueError, match="needs point_weight"):
        MixtureConfig(scene_point_weight=1.0)
    with pytest.raises(ValueError, match="no prompt scenes"):
        UIO2Model(CFG.replace(point_heads=2)).scene_point_logits(enc, torch.zeros(4).long())
    with pytest.raises(ValueError, match="query_patches must be"):
        model.scene_point_logits(enc, torch.tensor([0, 1, 2, 16]))  # 16: view 1

import numpy as np
import pytest
import torch

from uio2_robot.model.config import get_config
from uio2_robot.model.uio2 import UIO2Model
from uio2_robot.tokenize import Processor
from uio2_robot.train.batching import encoder_inputs_from_numpy, processor_sizes
from uio2_robot.train.config import MixtureConfig
from uio2_robot.train.masking import shift_right
from uio2_robot.train.objectives import compute_losses, sequence_loss
from uio2_robot.train.packing import pack_decoder, pack_encoder, plan_packs, unpack_encoder

CFG = get_config("tiny")


def _setup(n: int = 5, seed: int = 0):
    torch.manual_seed(seed)
    proc = Processor.for_suite(n_bins=256, **processor_sizes(CFG))
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        crop = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
        prompt = [["Put ", crop, " in"], ["push"], ["a", crop, "b", crop, "c"]][i % 3]
        frame = {k: rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for k in ("front", "top")}
        ex = proc.encode_inputs(prompt, {**frame, "proprio": rng.normal(size=6)}, [frame] * (i % 3))
        ex["action_tokens"] = proc.action_target_tokens(rng.uniform(-0.3, 0.6, 6))
        examples.append(ex)
    return proc, UIO2Model(CFG).eval(), proc.collate(examples)


def test_plan_packs_capacity_and_cover():
    lengths = [50, 10, 40, 30, 20, 60]
    dec = [6, 6, 6, 6, 6, 6]
    packs = plan_packs(lengths, 70, dec, 12)
    assert sorted(i for p in packs for i in p) == list(range(6))
    for p in packs:
        assert sum(lengths[i] for i in p) <= 70 and sum(dec[i] for i in p) <= 12
    # first-fit decreasing: 60+10, 50+20, 40+30
    assert sorted(packs) == [[0, 4], [1, 5], [2, 3]]
    assert plan_packs(lengths, 1000) == [[0, 1, 2, 3, 4, 5]]
    with pytest.raises(ValueError, match="example 5"):
        plan_packs(lengths, 55)


def test_pack_unpack_encoder_round_trip():
    proc, model, batch = _setup()
    emb = model.embed(encoder_inputs_from_numpy(batch))
    s = emb.hidden.shape[1]
    lengths = emb.mask.sum(1).tolist()
    packs = plan_packs(lengths, 2 * s)
    assert len(packs) < len(lengths)
    pe = pack_encoder(emb, packs)
    assert pe.emb.hidden.shape[0] == len(packs)
    assert int(pe.emb.mask.sum()) == sum(lengths)  # only real tokens are packed
    # attention stays inside an example
    seg = pe.segment
    assert torch.equal(pe.attn_mask, (seg[:, :, None] == seg[:, None, :]) & (seg >= 0)[:, None, :])
    back = unpack_encoder(pe.emb, pe, emb)
    m = emb.mask.unsqueeze(-1)
    assert torch.equal(back.hidden * m, emb.hidden * m)
    assert not back.hidden[~emb.mask].any()
    with pytest.raises(ValueError, match="cover every example"):
        pack_encoder(emb, [[0, 1]])


def test_packed_encoder_matches_unpacked():
    proc, model, batch = _setup()
    emb = model.embed(encoder_inputs_from_numpy(batch))
    ref = model.encode_embedded(emb)
    pe = pack_encoder(emb, plan_packs(emb.mask.sum(1).tolist(), 2 * emb.hidden.shape[1]))
    out = unpack_encoder(model.encode_embedded(pe.emb, pe.attn_mask), pe, emb)
    m = emb.mask
    torch.testing.assert_close(out.hidden[m], ref.hidden[m], atol=1e-5, rtol=1e-5)


def test_pack_decoder_layout():
    targets = torch.arange(12).view(3, 4) + 100
    dec_in = shift_right(targets, 1)
    mask = torch.ones(3, 4, dtype=torch.bool)
    enc_segment = torch.tensor([[0, 0, 2, 2, -1], [1, 1, 1, -1, -1]])
    pd = pack_decoder(dec_in, targets, mask, [4, 3, 2], [[0, 2], [1]], enc_segment, pad_id=0)
    assert pd.tokens.shape == (2, 6)
    assert pd.positions.tolist() == [[0, 1, 2, 3, 0, 1], [0, 1, 2, 0, 0, 0]]
    assert pd.segment.tolist() == [[0, 0, 0, 0, 2, 2], [1, 1, 1, -1, -1, -1]]
    assert pd.targets[0].tolist() == [100, 101, 102, 103, 108, 109]
    assert pd.loss_mask[1].tolist() == [True, True, True, False, False, False]
    # example 2's first decoder position sees only itself, not example 0's tokens
    assert pd.self_attn_mask[0, 4].tolist() == [False] * 4 + [True, False]
    assert pd.self_attn_mask[0, 5].tolist() == [False] * 4 + [True, True]
    # cross-attention only to the same example's encoder tokens
    assert pd.cross_attn_mask[0, 0].tolist() == [True, True, False, False, False]
    assert pd.cross_attn_mask[0, 5].tolist() == [False, False, True, True, False]
    assert not pd.cross_attn_mask[1, 3:].any()


@pytest.mark.parametrize("dynamic", [False, True])
def test_packed_loss_equals_one_by_one(dynamic):
    proc, model, batch = _setup()
    inputs = encoder_inputs_from_numpy(batch)
    targets = torch.from_numpy(batch["action_tokens"])
    loss_mask = torch.ones_like(targets, dtype=torch.bool)
    loss_mask[1, 4:] = False  # a ragged example: its tail is not decoded when packed
    hidden = None
    if dynamic:
        hidden = torch.zeros_like(loss_mask)
        hidden[:, 2] = True
    cap = 2 * CFG.encoder_seq_len  # several examples share a row
    packed = sequence_loss(
        model,
        inputs,
        targets,
        loss_mask,
        proc.vocab,
        hidden_targets=hidden,
        pack=True,
        pack_capacity=cap,
    )
    emb_lengths = model.embed(inputs).mask.sum(1).tolist()
    packs = plan_packs(emb_lengths, cap, [6, 4, 6, 6, 6], CFG.max_dec_len)
    assert len(packs) < 5
    total, count = 0.0, 0
    for i in range(5):
        one = inputs.__class__(**{k: getattr(inputs, k)[i : i + 1] for k in inputs.names()})
        res = sequence_loss(
            model,
            one,
            targets[i : i + 1],
            loss_mask[i : i + 1],
            proc.vocab,
            hidden_targets=None if hidden is None else hidden[i : i + 1],
        )
        total += res.loss.item() * res.n_tokens
        count += res.n_tokens
    assert packed.n_tokens == count
    assert abs(packed.loss.item() - total / count) < 1e-5


def test_compute_losses_packed_equals_unpacked():
    proc, model, batch = _setup(n=4, seed=1)
    kw = {"s_action": 1.0, "r_image": 1.0, "x_text": 1.0, "r_text": 1.0, "s_text": 1.0}
    plain = MixtureConfig(**kw)
    packed = MixtureConfig(**kw, pack=True, pack_capacity=2 * CFG.encoder_seq_len)
    a = compute_losses(model, batch, plain, torch.Generator().manual_seed(0), proc.vocab)
    b = compute_losses(model, batch, packed, torch.Generator().manual_seed(0), proc.vocab)
    for key in a:
        assert abs(a[key].item() - b[key].item()) < 1e-5, key
    # gradients agree too
    model.zero_grad()
    a["loss"].backward()
    ga = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    b["loss"].backward()
    for n, p in model.named_parameters():
        if n in ga:
            torch.testing.assert_close(p.grad, ga[n], atol=1e-5, rtol=1e-4)

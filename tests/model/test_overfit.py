"""The tiny model can memorise 16 fixed examples: the whole path (patch embedding, encoder,
cross-attention, tied head, constrained cached generation) carries enough signal to learn."""

from __future__ import annotations

import torch

from uio2_robot.model import UIO2Model, get_config, random_encoder_inputs

BOS, FIRST_BIN, N_BINS = 1471, 456, 1000  # byte vocabulary layout


def test_tiny_model_overfits_16_examples_to_full_token_accuracy():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = UIO2Model(cfg)
    g = torch.Generator().manual_seed(0)
    inputs = random_encoder_inputs(cfg, 16, generator=g)
    # Only the observation images tell the examples apart: the targets must be read through the
    # patch embedding, 2D-RoPE encoder and cross-attention.
    for name in ("tokens", "prompt_images", "history_images", "proprio"):
        value = getattr(inputs, name)
        setattr(inputs, name, value[:1].expand_as(value).clone())
    targets = FIRST_BIN + torch.randint(0, N_BINS, (16, 6), generator=g)  # 6 action bins each
    dec_in = torch.cat([torch.full((16, 1), BOS), targets[:, :-1]], dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(400):
        logits = model(inputs, dec_in)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 24 and (logits.argmax(-1) == targets).all():
            break
    allowed = torch.zeros(cfg.vocab_size, dtype=torch.bool)
    allowed[FIRST_BIN : FIRST_BIN + N_BINS] = True
    model.eval()
    generated = model.generate(inputs, 6, allowed, bos_id=BOS)
    assert (generated == targets).float().mean().item() == 1.0, (step, loss.item())

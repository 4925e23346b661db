"""Compare ``OfficialUIO2`` stage by stage with activations recorded from the official code.

A fixture file (safetensors) has the layout of ``tests/data/uio2_official/fixture.safetensors``:
``batch/*`` (the official preprocessor's batch), ``act/*`` (activations per stage, with their
masks) and ``out/*`` (teacher-forced logits, greedy tokens). A file with only some stages (the
XXL resampler variant's ``act/input_image_history/embed``, ``act/encoder_hidden``,
``out/text_logits_last``: the teacher-forced target's last position) is compared on those. Padding positions carry finite garbage in the
official code, so every stage is compared where its mask is 1.

Tolerances are absolute and per stage: float32 on CPU reorders sums differently from the
official einsum-based code, which moves activations by ~1e-6; 1e-5 leaves headroom while a
single missed weight or modality embedding moves them by 1e-1 or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from uio2_robot.model.official import OfficialInputs, OfficialUIO2

STAGE_TOLERANCES: dict[str, float] = {
    "vit_image/0": 1e-5,
    "vit_image/1": 1e-5,
    "input_text/embed": 1e-5,
    "input_image/embed": 1e-5,
    "input_image_history/embed": 1e-5,
    "resampler": 1e-5,
    "encoder_hidden": 1e-5,
    "target_text/input_embedding": 1e-5,
    "decoder_hidden": 1e-5,
    "text_logits": 1e-5,
    "text_logits_last": 1e-5,
}

COSINE_TOLERANCES: dict[str, float] = {
    # scaled cosine attention (xxl) multiplies cosine logits by up to 100: float32 rounding of
    # the history latents grows with it (measured 1.5e-5 on values up to 2.8); the logits
    # stay within 1e-5
    "input_image_history/embed": 5e-5,
    "resampler": 5e-5,
    "encoder_hidden": 5e-5,
}


@dataclass(frozen=True)
class StageDiff:
    stage: str
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= self.tolerance


@dataclass(frozen=True)
class ParityReport:
    stages: tuple[StageDiff, ...]
    greedy_match: bool | None  # None: the fixture has no greedy tokens
    greedy_ours: list[int] | None
    greedy_official: list[int] | None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and self.greedy_match is not False

    def lines(self) -> list[str]:
        out = [
            f"{s.stage:<30} max|diff| {s.max_abs_diff:.3e}  (tol {s.tolerance:.0e})  "
            f"{'ok' if s.ok else 'FAIL'}"
            for s in self.stages
        ]
        if self.greedy_match is not None:
            out.append(
                f"{'greedy tokens':<30} {'identical' if self.greedy_match else 'DIFFER'}: "
                f"ours {self.greedy_ours} official {self.greedy_official}"
            )
        return out


def fixture_inputs(fixture: Mapping[str, Tensor]) -> OfficialInputs:
    batch = {k[len("batch/") :]: v for k, v in fixture.items() if k.startswith("batch/")}
    return OfficialInputs.from_official(batch)


@torch.no_grad()
def compare_to_fixture(model: OfficialUIO2, fixture: Mapping[str, Tensor]) -> ParityReport:
    """Run the fixture's batch through ``model`` and compare every stage the fixture has."""
    if not any(k.startswith("batch/") for k in fixture):
        raise ValueError("fixture has no batch/* tensors (the official preprocessor's batch)")
    inp = fixture_inputs(fixture)
    model = model.eval()
    ours: dict[str, tuple[Tensor, Tensor | None]] = {}

    last, second = model.vit_image_features(inp)
    image_mask = inp.image_mask > 0
    ours["vit_image/0"] = (last, image_mask)
    ours["vit_image/1"] = (second, image_mask)
    text = model.embed_text(inp)
    image = model.embed_image(inp)
    history = model.embed_history(inp)
    ours["input_text/embed"] = (text.hidden, text.mask)
    ours["input_image/embed"] = (image.hidden, image.mask)
    ours["input_image_history/embed"] = (history.hidden, history.mask)
    b, t, p, _ = inp.history.shape
    frames, mask = inp.history.reshape(b * t, p, -1), inp.history_mask.reshape(b * t, p)
    features, _ = model.vit(frames, mask, inp.history_pos.reshape(b * t, p), model.cfg.history_grid)
    latents = model.resampler(model.history_pre_projection(features), mask)
    frame_ok = (mask > 0).any(-1)[:, None].expand(-1, latents.shape[1])
    ours["resampler"] = (latents, frame_ok)
    enc = model.encode_embedded(model.embed(inp))
    ours["encoder_hidden"] = (enc.hidden, enc.mask)
    if "batch/targets/text/inputs" in fixture:
        tokens = fixture["batch/targets/text/inputs"].long()
        dec_mask = fixture.get("batch/targets/text/mask")
        hidden = model.decode_hidden(tokens, enc, dec_mask)
        valid = None if dec_mask is None else dec_mask > 0
        ours["target_text/input_embedding"] = (model.embed_target(tokens), valid)
        ours["decoder_hidden"] = (model.decoder_norm(hidden), valid)
        ours["text_logits"] = (model.logits(hidden), valid)
        ours["text_logits_last"] = (model.logits(hidden[:, -1:]), None)

    tolerances = dict(STAGE_TOLERANCES)
    if model.cfg.resampler_scaled_cosine:
        tolerances.update(COSINE_TOLERANCES)
    stages = []
    for stage, tol in tolerances.items():
        key = f"out/{stage}" if stage.startswith("text_logits") else f"act/{stage}"
        if key not in fixture or stage not in ours:
            continue
        got, valid = ours[stage]
        want = fixture[key].to(torch.float32)
        got = got.to(torch.float32).reshape(want.shape)
        diff = (got - want).abs()
        if valid is not None:
            diff = diff[valid.reshape(diff.shape[: valid.dim()])]
        stages.append(StageDiff(stage, float(diff.max()) if diff.numel() else 0.0, tol))

    greedy_match = greedy_ours = greedy_official = None
    if "out/greedy_tokens" in fixture:
        official = fixture["out/greedy_tokens"].long()
        official = official[:, 1:] if bool((official[:, 0] == 0).all()) else official  # BOS
        gen = model.generate(inp, official.shape[1], eos_id=None)
        greedy_ours, greedy_official = gen[0].tolist(), official[0].tolist()
        greedy_match = bool(torch.equal(gen, official))
    return ParityReport(tuple(stages), greedy_match, greedy_ours, greedy_official)

"""ONNX export of an imported official UIO2 model, and its parity check against torch.

Two graphs, like the project's bundles: the encoder (the official batch in; hidden states,
mask and every decoder layer's cross-attention keys/values out) and one decoder step with an
explicit self-attention cache (dynamic cache length). The encoder graph has the static sizes
of the example batch it was exported with (text length, patches, history frames), as the
project's encoder graph does; the ViT's resized position tables are folded in as constants.

``check_onnx_parity`` runs a batch through both runtimes and compares the encoder states, the
logits of every decoding step and the greedy tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from uio2_robot.export.graphs import export_graph
from uio2_robot.model.layers import attention_bias
from uio2_robot.model.official import OfficialEncoded, OfficialInputs, OfficialUIO2
from uio2_robot.runtime.official import FORMAT, MANIFEST
from uio2_robot.tokenize.official_batch import pad_official_batch

ENCODER_INPUTS = tuple(
    f.name
    for f in OfficialInputs.__dataclass_fields__.values()  # type: ignore[attr-defined]
)
ENCODER_OUTPUTS = ("enc_mask", "cross_k", "cross_v")
DECODER_INPUTS = ("token", "position", "self_k", "self_v", "cross_k", "cross_v", "enc_mask")
DECODER_OUTPUTS = ("logits", "new_self_k", "new_self_v")


class EncoderGraph(nn.Module):
    def __init__(self, model: OfficialUIO2) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        enc: OfficialEncoded = self.model.encode_embedded(self.model.embed(OfficialInputs(*args)))
        cross_k, cross_v = self.model.cross_kv(enc)
        return enc.mask, cross_k, cross_v


class DecoderStepGraph(nn.Module):
    def __init__(self, model: OfficialUIO2) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        token: Tensor,  # (B, 1) int64
        position: Tensor,  # (B,) int64
        self_k: Tensor,  # (n_dec, B, H, Lc, Dh)
        self_v: Tensor,
        cross_k: Tensor,  # (n_dec, B, H, S, Dh)
        cross_v: Tensor,
        enc_mask: Tensor,  # (B, S) bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        bias = attention_bias(enc_mask[:, None, None, :])
        past = list(zip(self_k.unbind(0), self_v.unbind(0), strict=True))
        logits, grown = self.model.decode_token(token, position, past, cross_k, cross_v, bias)
        return logits, torch.stack([k for k, _ in grown]), torch.stack([v for _, v in grown])


def static_example(batch: Mapping[str, np.ndarray], text_len: int, n_frames: int) -> OfficialInputs:
    """An official batch padded to the static sizes the encoder graph is exported with."""
    return OfficialInputs.from_official(pad_official_batch(dict(batch), text_len, n_frames))


def export_official(model: OfficialUIO2, example: OfficialInputs, out: str | Path) -> Path:
    """Write ``encoder.onnx``, ``decoder_step.onnx`` and the runtime's manifest for ``model``
    into ``out``; the encoder takes the text length and history frames of ``example``."""
    out = Path(out)
    model = model.eval()
    cfg = model.cfg
    model.vit.freeze_grids([cfg.image_grid, cfg.history_grid])
    try:
        _export_both(model, example, out)
    finally:
        model.vit.freeze_grids([])  # back to computing them (a model may be trained later)
    manifest = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "text_len": int(example.text_tokens.shape[1]),
        "n_frames": int(example.history.shape[1]),
        "graphs": ["encoder.onnx", "decoder_step.onnx"],
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out


@torch.no_grad()
def _export_both(model: OfficialUIO2, example: OfficialInputs, out: Path) -> None:
    cfg = model.cfg
    args = tuple(t.contiguous() for t in example.as_tuple())
    export_graph(EncoderGraph(model), args, out / "encoder.onnx", ENCODER_INPUTS,
                 ENCODER_OUTPUTS, {"args": tuple(None for _ in args)})  # fmt: skip
    enc_mask, cross_k, cross_v = EncoderGraph(model)(*args)
    b, lc = cross_k.shape[1], 2
    cache = (cfg.n_dec_layers, b, cfg.n_heads, lc, cfg.head_dim)
    g = torch.Generator().manual_seed(0)
    step_args = (
        torch.zeros(b, 1, dtype=torch.int64),
        torch.full((b,), lc, dtype=torch.int64),
        torch.randn(cache, generator=g),
        torch.randn(cache, generator=g),
        cross_k,
        cross_v,
        enc_mask,
    )
    length = torch.export.Dim("cache", min=0, max=cfg.max_text_len)
    dynamic = {
        "token": None, "position": None, "self_k": {3: length}, "self_v": {3: length},
        "cross_k": None, "cross_v": None, "enc_mask": None,
    }  # fmt: skip
    export_graph(DecoderStepGraph(model), step_args, out / "decoder_step.onnx",
                 DECODER_INPUTS, DECODER_OUTPUTS, dynamic)  # fmt: skip


@dataclass(frozen=True)
class OnnxParity:
    cross_kv_max_diff: float
    logits_max_diff: float
    tokens_torch: list[int]
    tokens_onnx: list[int]

    @property
    def tokens_match(self) -> bool:
        return self.tokens_torch == self.tokens_onnx


def check_onnx_parity(
    model: OfficialUIO2, example: OfficialInputs, folder: str | Path, n_tokens: int = 8
) -> OnnxParity:
    """Greedy-decode ``example`` with torch and with the exported graphs (onnxruntime, CPU)."""
    import onnxruntime as ort

    folder = Path(folder)
    opts = ort.SessionOptions()
    enc = ort.InferenceSession(str(folder / "encoder.onnx"), opts, ["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(folder / "decoder_step.onnx"), opts, ["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(ENCODER_INPUTS, example.as_tuple(), strict=True)}
    enc_mask, cross_k, cross_v = enc.run(None, feeds)
    with torch.no_grad():
        t_mask, t_k, t_v = EncoderGraph(model.eval())(*example.as_tuple())
    kv_diff = max(
        float(np.abs(cross_k - t_k.numpy()).max()), float(np.abs(cross_v - t_v.numpy()).max())
    )
    cfg = model.cfg
    b = enc_mask.shape[0]
    self_k = np.zeros((cfg.n_dec_layers, b, cfg.n_heads, 0, cfg.head_dim), dtype=np.float32)
    self_v = self_k.copy()
    token = np.zeros((b, 1), dtype=np.int64)
    t_token = torch.zeros((b, 1), dtype=torch.int64)
    tk, tv = torch.from_numpy(self_k), torch.from_numpy(self_v)
    step = DecoderStepGraph(model)
    ours, theirs, worst = [], [], 0.0
    for i in range(n_tokens):
        pos = np.full((b,), i, dtype=np.int64)
        logits, self_k, self_v = dec.run(None, {
            "token": token, "position": pos, "self_k": self_k, "self_v": self_v,
            "cross_k": cross_k, "cross_v": cross_v, "enc_mask": enc_mask,
        })  # fmt: skip
        with torch.no_grad():
            t_logits, tk, tv = step(t_token, torch.from_numpy(pos), tk, tv, t_k, t_v, t_mask)
        worst = max(worst, float(np.abs(logits - t_logits.numpy()).max()))
        token = logits.argmax(-1)[:, None].astype(np.int64)
        t_token = t_logits.argmax(-1, keepdim=True)
        theirs.append(int(token[0, 0]))
        ours.append(int(t_token[0, 0]))
    return OnnxParity(kv_diff, worst, ours, theirs)

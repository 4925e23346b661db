"""onnxruntime sessions of an exported official UIO2 model (``uio2-robot official export``).

The folder holds ``encoder.onnx``, ``decoder_step.onnx`` and ``official_manifest.json`` (the
model's ``OfficialConfig``, the static text length and history frames the encoder was exported
with). ``OfficialRunner.generate`` pads a batch to those sizes, encodes it once and decodes
greedily with the explicit KV cache, applying a grammar constraint at every step: numpy and
onnxruntime only, like the rest of the runtime.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from uio2_robot.runtime.runner import choose_providers, session_options
from uio2_robot.tokenize.official_batch import pad_official_batch
from uio2_robot.tokenize.official_vocab import BOS_ID, EOS_ID

MANIFEST = "official_manifest.json"
FORMAT = "uio2-official-onnx/1"
ENCODER_KEYS = (  # the encoder graph's inputs, in order: official batch keys
    "inputs/text/tokens",
    "inputs/text/mask",
    "inputs/text/pos_ids",
    "inputs/image/input",
    "inputs/image/mask",
    "inputs/image/pos_ids",
    "inputs/image_history/input",
    "inputs/image_history/mask",
    "inputs/image_history/pos_ids",
)


class OfficialRunner:
    """Encoder + decoder-step sessions of an exported official model (batch 1)."""

    def __init__(
        self, folder: str | Path, providers: Sequence[str] | None = None, threads: int = 0
    ) -> None:
        folder = Path(folder)
        path = folder / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: no {MANIFEST} (export with `official export`)")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT}")
        opts = session_options(threads)
        names = choose_providers(providers)
        self.encoder = ort.InferenceSession(str(folder / "encoder.onnx"), opts, providers=names)
        self.decoder = ort.InferenceSession(
            str(folder / "decoder_step.onnx"), opts, providers=names
        )
        self.config = self.manifest["config"]
        self.text_len = int(self.manifest["text_len"])
        self.n_frames = int(self.manifest["n_frames"])

    def encode(self, batch: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """(enc_mask, cross_k, cross_v) of an official batch (padded here to the static sizes)."""
        padded = pad_official_batch(dict(batch), self.text_len, self.n_frames)
        feeds = {
            inp.name: padded[key].astype(_NP[inp.type])
            for inp, key in zip(self.encoder.get_inputs(), ENCODER_KEYS, strict=True)
        }
        return self.encoder.run(None, feeds)

    def generate(
        self,
        batch: Mapping[str, np.ndarray],
        n_tokens: int,
        constraint: Callable[[list[int]], np.ndarray] | None = None,
    ) -> list[int]:
        """Greedy tokens (stopping after EOS) under ``constraint(tokens so far) -> (V,) bool``."""
        enc_mask, cross_k, cross_v = self.encode(batch)
        cfg = self.config
        shape = (cfg["n_dec_layers"], 1, cfg["n_heads"], 0, cfg["head_dim"])
        self_k = np.zeros(shape, dtype=np.float32)
        self_v = np.zeros(shape, dtype=np.float32)
        token, out = BOS_ID, []
        for i in range(n_tokens):
            logits, self_k, self_v = self.decoder.run(None, {
                "token": np.array([[token]], dtype=np.int64),
                "position": np.array([i], dtype=np.int64),
                "self_k": self_k, "self_v": self_v,
                "cross_k": cross_k, "cross_v": cross_v, "enc_mask": enc_mask,
            })  # fmt: skip
            row = logits[0]
            if constraint is not None:
                row = np.where(constraint(out), row, -np.inf)
            token = int(np.argmax(row))
            out.append(token)
            if token == EOS_ID:
                break
        return out


_NP = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(int32)": np.int32,
       "tensor(bool)": np.bool_}  # fmt: skip

"""`uio2-robot export`'s structured config (the schema ``configs/export.yaml`` is checked against)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ExportConfig:
    """Checkpoint folder -> deploy bundle, optionally followed by torch/ONNX parity checks."""

    checkpoint: str | None = None  # checkpoint folder written by `uio2-robot train` (required)
    out: str | None = None  # bundle folder to write (required)
    variant: str = "fp32"  # fp32 | int8 (CPU) | fp16 (GPU)
    per_channel: bool = True  # int8: per-output-channel weight scales
    overwrite: bool = False  # replace an existing bundle folder
    compact_encoder: bool = True  # the encoder graph skips padded positions (exact, faster)
    check: bool = False  # run the open-loop parity check after exporting
    parity_episodes: int = 12  # episodes of recorded observations (cycling the suite tasks)
    parity_steps: int = 8  # at most this many observations per episode
    parity_seed: int = 0
    use_suite: bool = True  # record the observations on the sim suite (else synthetic frames)
    threads: int = 0  # onnxruntime intra-op threads for the check (0 = default)
    providers: list[str] | None = None  # execution providers for the check (None = best available)
    report: str | None = None  # also write the check's JSON report to this file
    closed_loop_episodes: int = 0  # > 0: also compare closed-loop success (needs a trained policy)
    tasks: list[str] = field(default_factory=lambda: ["visual_manipulation"])
    levels: list[str] = field(default_factory=lambda: ["L1"])
    sign_key: str | None = None  # Ed25519 private key (PEM): sign the bundle (needs cryptography)

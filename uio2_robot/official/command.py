"""``uio2-robot official import|check``: the library side of the command (the CLI stays thin).

``import src=DIR out=CKPT [dtype=float32|bfloat16|float16]`` converts a released folder into a
project checkpoint and lists the official keys it deliberately dropped. ``check src=DIR
fixture=FILE`` runs a fixture's official batch through the release (or an imported checkpoint)
and prints the max abs difference per stage and of the logits, and whether the greedy tokens
match; it returns 1 when any stage is past its tolerance. ``export src=CKPT out=DIR
fixture=FILE`` writes the ONNX encoder and decoder-step graphs of an imported checkpoint
(static encoder sizes: those of the fixture's batch) and checks them against torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from uio2_robot.errors import UsageError

ACTIONS = ("import", "check", "export", "finetune")


@dataclass
class OfficialCommandConfig:
    """`uio2-robot official`'s structured config (``configs/official.yaml``)."""

    src: str | None = None  # released folder: config.json + model.safetensors|pytorch_model.bin
    out: str | None = None  # import: checkpoint folder to write
    dtype: str | None = None  # import: float32 | bfloat16 | float16; null keeps the stored dtype
    fixture: str | None = None  # check / export: safetensors file in the fixture layout
    # finetune: src=CKPT (imported) out=CKPT stores=[..] tokenizer=PATH
    stores: list[str] | None = None  # trajectory stores of primitive-mode episodes
    tokenizer: str | None = None  # LLaMA's tokenizer.model
    mode: str = "lora"  # full | frozen_vit | lora
    steps: int = 100
    lr: float = 1e-4
    lora_rank: int = 8
    camera: str = "top"  # the image input
    text_len: int = 128  # export: static prompt length of the encoder graph (tokens)


def run_official_command(cfg: OfficialCommandConfig, extra: list[str]) -> int:
    if not extra or extra[0] not in ACTIONS:
        raise UsageError(f"usage: uio2-robot official {{{','.join(ACTIONS)}}} src=DIR [...]")
    if not cfg.src:
        raise UsageError(f"official {extra[0]} needs src=DIR (a released UIO2 folder)")
    if extra[0] == "import":
        return _import(cfg)
    if extra[0] == "export":
        return _export(cfg)
    if extra[0] == "finetune":
        return _finetune(cfg)
    return _check(cfg)


def _import(cfg: OfficialCommandConfig) -> int:
    from uio2_robot.official.convert import import_release

    if not cfg.out:
        raise UsageError("official import needs out=CKPT (the checkpoint folder to write)")
    report = import_release(cfg.src, cfg.out, cfg.dtype)
    for key in report.dropped_keys:
        print(f"dropped: {key}")
    print(json.dumps(report.summary(), indent=2))
    return 0


def _check(cfg: OfficialCommandConfig) -> int:
    from safetensors.torch import load_file

    from uio2_robot.official.convert import load_official_checkpoint
    from uio2_robot.official.parity import compare_to_fixture
    from uio2_robot.official.release import load_release_model

    if not cfg.fixture:
        raise UsageError("official check needs fixture=FILE (safetensors in the fixture layout)")
    if not Path(cfg.fixture).is_file():
        raise UsageError(f"fixture file not found: {cfg.fixture}")
    src = Path(cfg.src)
    if (src / "processor.json").is_file():  # an imported checkpoint
        model = load_official_checkpoint(src)[0]
    else:
        model = load_release_model(src)[0]
    try:
        report = compare_to_fixture(model, load_file(cfg.fixture))
    except ValueError as exc:
        raise UsageError(f"{cfg.fixture}: {exc}") from None
    for line in report.lines():
        print(line)
    print("PASS" if report.ok else "FAIL: past tolerance")
    return 0 if report.ok else 1


def _export(cfg: OfficialCommandConfig) -> int:
    from safetensors.torch import load_file

    from uio2_robot.official.convert import load_official_checkpoint
    from uio2_robot.official.onnx_export import check_onnx_parity, export_official, static_example
    from uio2_robot.official.parity import fixture_inputs
    from uio2_robot.runtime.official import OfficialRunner

    if not cfg.out or not cfg.fixture:
        raise UsageError("official export needs out=DIR and fixture=FILE (the example batch)")
    model = load_official_checkpoint(cfg.src)[0]
    fixture = load_file(cfg.fixture)
    batch = {k[len("batch/") :]: v.numpy() for k, v in fixture.items() if k.startswith("batch/")}
    text_len = min(cfg.text_len, model.cfg.max_text_len)
    example = static_example(batch, text_len, model.cfg.max_frames)
    export_official(model, example, cfg.out)
    parity = check_onnx_parity(model, example, cfg.out)
    # the runtime pads the unpadded batch itself: same tokens as torch on the batch as given
    runtime = OfficialRunner(cfg.out).generate(batch, 8)
    reference = model.generate(fixture_inputs(fixture), 8).tolist()[0]
    report = parity.__dict__ | {
        "tokens_match": parity.tokens_match,
        "runtime_tokens_match": runtime == reference,
        "text_len": text_len,
        "n_frames": model.cfg.max_frames,
    }
    print(json.dumps(report, indent=2))
    ok = parity.tokens_match and runtime == reference
    return 0 if ok and parity.logits_max_diff < ONNX_LOGITS_TOL else 1


ONNX_LOGITS_TOL = 1e-4  # onnxruntime's fused kernels vs torch, float32 (measured 1.4e-6)


def _finetune(cfg: OfficialCommandConfig) -> int:
    from uio2_robot.official.convert import load_official_checkpoint
    from uio2_robot.official.data import examples_from_stores
    from uio2_robot.official.finetune import finetune, prepare_finetune, save_finetuned
    from uio2_robot.tokenize.official_vocab import OfficialTokenizer

    if not cfg.out or not cfg.stores or not cfg.tokenizer:
        raise UsageError("official finetune needs out=CKPT stores=[STORE,..] tokenizer=PATH")
    model, processor, config = load_official_checkpoint(cfg.src)
    tokenizer = OfficialTokenizer(cfg.tokenizer)
    examples = examples_from_stores(cfg.stores, tokenizer, model.cfg, cfg.camera)
    trainable = prepare_finetune(model, cfg.mode, cfg.lora_rank)
    losses = finetune(model, examples, cfg.steps, cfg.lr)
    config = {**config, "finetune": {"mode": cfg.mode, "steps": cfg.steps, "lr": cfg.lr,
                                     "stores": list(cfg.stores), "examples": len(examples)}}  # fmt: skip
    save_finetuned(model, cfg.out, config, processor)
    print(json.dumps({"examples": len(examples), "trainable": trainable,
                      "loss_first": losses[0], "loss_last": losses[-1], "out": cfg.out}))  # fmt: skip
    return 0

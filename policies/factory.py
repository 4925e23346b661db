"""Build any policy by name: the one place the CLI, collectors and servers get policies from."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from uio2_robot.policies.base import Policy

POLICY_NAMES = ("default", "oracle", "random", "replay", "uio2", "onnx", "uio2_official")
POLICY_OPTIONS = (
    "checkpoint",
    "bundle",
    "device",
    "greedy",
    "temperature",
    "temporal_ensemble",
    "execute_steps",
    "threads",
    "providers",
    "seed",
    "guide_place",
    "guide_margin",
    "store",
    "episode",
    "tokenizer",
)
"""Every option any policy takes (``uio2_robot.config_schema.PolicyConfig``'s fields); one config
serves all policies, so a policy ignores the options of others, but a name outside this list is
a typo and an error."""

DEFAULT_POLICY_DIR = Path(str(files("uio2_robot") / "assets" / "default_policy"))
"""Where the shipped default policy (a checkpoint folder) lives inside the installed package
(package data of ``uio2_robot``, so editable and regular installs find it alike)."""


def make_policy(name: str, **kwargs: Any) -> Policy:
    """Return a fresh policy. Options of other policies are ignored, so one config serves all;
    an option no policy knows (a typo) is an error naming the known ones.

    - ``oracle``: scripted expert on privileged simulator state (sim only).
    - ``random``: uniform actions (``seed``).
    - ``replay``: recorded actions of a stored episode (``store``, ``episode``).
    - ``uio2``: the torch UIO2 policy from a checkpoint folder (``checkpoint``, ``device``, ...).
    - ``onnx``: the onnxruntime policy from a deploy bundle (``bundle``, ``providers``, ``threads``).
    - ``default``: the shipped UIO2 checkpoint.
    - ``uio2_official``: a released UIO2 checkpoint imported by ``uio2-robot official import``
      (``checkpoint``, or an ``official export`` folder as ``bundle``; ``tokenizer``: LLaMA's
      tokenizer.model), open-loop VIMA plans.
    """
    unknown = sorted(set(kwargs) - set(POLICY_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown policy option(s) {unknown}; the known ones are {sorted(POLICY_OPTIONS)}"
        )
    if name == "oracle":
        from uio2_robot.policies.oracle import OraclePolicy

        return OraclePolicy()
    if name == "random":
        from uio2_robot.policies.random import RandomPolicy

        return RandomPolicy(seed=int(kwargs.get("seed") or 0))
    if name == "replay":
        from uio2_robot.policies.replay import ReplayPolicy

        if not kwargs.get("store"):
            raise ValueError("policy=replay needs store=STORE (a trajectory store) and episode=N")
        return ReplayPolicy(kwargs["store"], int(kwargs.get("episode") or 0))
    if name in ("uio2", "default"):
        from uio2_robot.policies.uio2 import UIO2Policy

        checkpoint = kwargs.get("checkpoint") or (DEFAULT_POLICY_DIR if name == "default" else None)
        if checkpoint is None:
            raise ValueError(
                "policy=uio2 needs checkpoint=DIR (a folder written by `uio2-robot train`)"
            )
        if not Path(checkpoint).exists():
            raise FileNotFoundError(f"checkpoint folder not found: {checkpoint}")
        return UIO2Policy.from_checkpoint(
            checkpoint,
            device=kwargs.get("device") or "cpu",
            greedy=bool(kwargs.get("greedy", True)),
            temperature=float(kwargs.get("temperature") or 1.0),
            temporal_ensemble=bool(kwargs.get("temporal_ensemble", False)),
            execute_steps=int(kwargs.get("execute_steps") or 1),
            seed=int(kwargs.get("seed") or 0),
            guide_place=kwargs.get("guide_place"),
            guide_margin=int(kwargs.get("guide_margin", 1)),
        )
    if name == "onnx":
        from uio2_robot.policies.onnx_policy import OnnxPolicy

        bundle = kwargs.get("bundle")
        if bundle is None:
            raise ValueError(
                "policy=onnx needs bundle=DIR (a folder written by `uio2-robot export`)"
            )
        return OnnxPolicy(
            bundle,
            providers=kwargs.get("providers"),
            threads=int(kwargs.get("threads") or 0),
            temporal_ensemble=bool(kwargs.get("temporal_ensemble", False)),
            execute_steps=int(kwargs.get("execute_steps") or 1),
            guide_place=kwargs.get("guide_place"),
            guide_margin=int(kwargs.get("guide_margin", 1)),
        )
    if name == "uio2_official":
        from uio2_robot.policies.uio2_official import UIO2OfficialPolicy

        if not (kwargs.get("checkpoint") or kwargs.get("bundle")) or not kwargs.get("tokenizer"):
            raise ValueError(
                "policy=uio2_official needs checkpoint=DIR (from `uio2-robot official import`) "
                "or bundle=DIR (from `uio2-robot official export`), and tokenizer=PATH "
                "(LLaMA's tokenizer.model)"
            )
        return UIO2OfficialPolicy(
            kwargs.get("checkpoint") or None,
            kwargs["tokenizer"],
            device=kwargs.get("device") or "cpu",
            bundle=kwargs.get("bundle") or None,
        )
    raise ValueError(f"unknown policy {name!r}; expected one of {POLICY_NAMES}")

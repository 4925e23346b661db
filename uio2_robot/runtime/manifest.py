"""The deploy bundle's manifest: what is in the folder, and the checks that make it trustworthy.

A deploy bundle is a folder that runs the policy on its own, without torch and without the
checkpoint it came from::

    manifest.json        this module's contract (format version, graphs, hashes, processors ...)
    encoder.onnx         EncoderInputs -> cross_k, cross_v, enc_mask (encode + cross K/V fused)
    decoder_step.onnx    one decoder token with an explicit, growing self-attention KV cache
    decoder_greedy.onnx  cross_k, cross_v, enc_mask, allowed ids -> every action token of a
                         step (greedy, constrained, the decoder loop unrolled in one graph)
    processor.json       the numpy Processor (vocabulary, tokenizers, action bins, stats)

and, for a prefix-encoding model (``model_config.prompt_prefix``), the same encoder split in
two so a controller encodes the prompt once per episode::

    prompt_encoder.onnx  prompt inputs -> the prompt's per-layer keys/values and cross K/V
    step_encoder.onnx    observation inputs + that prompt cache -> cross_k, cross_v, enc_mask

and, when that model also has prompt scenes (``max_prompt_scenes``), the greedy decoder with
scene-guided placement inside (``uio2_robot.runtime.guidance``)::

    decoder_guided.onnx  decoder_greedy's inputs + pick_patch, place_rows -> the same outputs

The manifest repeats the processor's vocabulary, action bins, normalisation statistics and image
preprocessing so a reader in another language (a C++ robot stack) needs only ``manifest.json``;
loading checks those copies against ``processor.json`` so the two can never drift apart.

numpy, json and hashlib only: the ONNX runtime policy imports this in a process without torch
(so the names of the encoder inputs are spelled out here rather than read from
``uio2_robot.model.inputs``, which imports torch; the exporter asserts the two agree). The
prompt-scene inputs appear only in the graphs of a model with ``max_prompt_scenes`` > 0
(``encoder_input_names``), so older bundles keep their exact inputs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uio2_robot.tokenize.processor import Processor, model_mismatches

BUNDLE_FORMAT_VERSION = 4
"""Bumped whenever a bundle written by older code could be misread by newer code.
2: every bundle carries ``decoder_greedy`` (all action tokens of a step in one call).
3: a prefix bundle of a model with prompt scenes carries ``decoder_guided`` (the greedy decoder
with scene-guided placement inside).
4: the manifest is sealed (``integrity``: a digest of every field and the ``bundle_hash`` over
them), so an edited rate, action mode, guidance or seed list is refused, naming the field."""

OPSET = 18
"""The ONNX opset of every exported graph: torch 2.13's dynamo exporter (torchlib) targets 18
natively, so no version-conversion pass runs on the graphs."""

VARIANTS = ("fp32", "int8", "fp16")
"""fp32: the reference; int8: dynamic int8 MatMul weights for CPUs; fp16: half weights for GPUs."""

MANIFEST_FILE = "manifest.json"
ENCODER_FILE = "encoder.onnx"
DECODER_FILE = "decoder_step.onnx"
GREEDY_FILE = "decoder_greedy.onnx"
PROCESSOR_FILE = "processor.json"
PROMPT_ENCODER_FILE = "prompt_encoder.onnx"
STEP_ENCODER_FILE = "step_encoder.onnx"
GRAPHS = {"encoder": ENCODER_FILE, "decoder_step": DECODER_FILE, "decoder_greedy": GREEDY_FILE}
"""The graphs of every bundle."""
PREFIX_GRAPHS = {"prompt_encoder": PROMPT_ENCODER_FILE, "step_encoder": STEP_ENCODER_FILE}
"""The extra graphs of a prefix-encoding model's bundle."""
GUIDED_FILE = "decoder_guided.onnx"
GUIDE_GRAPHS = {"decoder_guided": GUIDED_FILE}
"""The extra graph of a prefix bundle of a model with prompt scenes (it can guide placement)."""

ENCODER_INPUTS = (
    "tokens",
    "token_mask",
    "prompt_images",
    "prompt_image_mask",
    "obs_images",
    "history_images",
    "history_mask",
    "proprio",
)
"""The encoder graph's inputs for a model without prompt scenes (``encoder_input_names``)."""
SCENE_INPUTS = ("scene_images", "scene_image_mask", "scene_image_index")
"""Prompt-scene inputs, after ``prompt_image_mask``, only when ``max_prompt_scenes`` > 0: a
zero-sized graph input would be fragile in onnxruntime and in other runtimes."""
ENCODER_OUTPUTS = ("cross_k", "cross_v", "enc_mask")
DECODER_INPUTS = ("token", "position", "self_k", "self_v", "cross_k", "cross_v", "enc_mask")
DECODER_OUTPUTS = ("logits", "self_k_out", "self_v_out")
GREEDY_INPUTS = ("cross_k", "cross_v", "enc_mask", "allowed")
GREEDY_OUTPUTS = ("tokens", "logits")
GUIDED_INPUTS = (*GREEDY_INPUTS, "pick_patch", "place_rows")
PROMPT_INPUTS = ENCODER_INPUTS[:4]
OBSERVATION_INPUTS = ENCODER_INPUTS[4:]
PROMPT_OUTPUTS = ("prompt_k", "prompt_v", "prompt_mask", "prompt_cross_k", "prompt_cross_v")
STEP_INPUTS = (*OBSERVATION_INPUTS, *PROMPT_OUTPUTS)
SCENE_STATE_OUTPUTS = {"prompt_encoder": "scene_states", "step_encoder": "obs_states"}
"""The extra output of each prefix graph of a model with prompt scenes: the first scene's and
view 0's final encoder states (B, Np, D), for scene-guided placement (``uio2_robot.runtime.guidance``)."""
GRAPH_IO = {
    "encoder": (ENCODER_INPUTS, ENCODER_OUTPUTS),
    "decoder_step": (DECODER_INPUTS, DECODER_OUTPUTS),
    "decoder_greedy": (GREEDY_INPUTS, GREEDY_OUTPUTS),
    "decoder_guided": (GUIDED_INPUTS, GREEDY_OUTPUTS),
    "prompt_encoder": (PROMPT_INPUTS, PROMPT_OUTPUTS),
    "step_encoder": (STEP_INPUTS, ENCODER_OUTPUTS),
}
"""Inputs and outputs of each graph of a model without prompt scenes (``graph_io_names``)."""


def has_prompt_scenes(model_config: Mapping[str, Any]) -> bool:
    """Whether a model has prompt-scene slots (configs older than the field have none)."""
    return int(model_config.get("max_prompt_scenes") or 0) > 0


def prompt_input_names(model_config: Mapping[str, Any]) -> tuple[str, ...]:
    """The prompt encoder's inputs: ``PROMPT_INPUTS``, then ``SCENE_INPUTS`` if the model has
    prompt scenes (``EncoderInputs.prompt_tensors`` order)."""
    if has_prompt_scenes(model_config):
        return (*PROMPT_INPUTS, *SCENE_INPUTS)
    return PROMPT_INPUTS


def encoder_input_names(model_config: Mapping[str, Any]) -> tuple[str, ...]:
    """The encoder graph's inputs: ``EncoderInputs.names()`` less the scene inputs when the
    model has no prompt scenes (then exactly ``ENCODER_INPUTS``)."""
    return (*prompt_input_names(model_config), *OBSERVATION_INPUTS)


def graph_io_names(
    graph: str, model_config: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(input names, output names) of ``graph`` in the bundle of a model with this config."""
    ins, outs = GRAPH_IO[graph]
    if graph == "encoder":
        ins = encoder_input_names(model_config)
    elif graph == "prompt_encoder":
        ins = prompt_input_names(model_config)
    if graph in SCENE_STATE_OUTPUTS and has_prompt_scenes(model_config):
        outs = (*outs, SCENE_STATE_OUTPUTS[graph])
    return ins, outs


def bundle_graphs(model_config: Mapping[str, Any]) -> dict[str, str]:
    """Graph name -> file name of the bundle of a model with this config."""
    if model_config.get("prompt_prefix"):
        if has_prompt_scenes(model_config):
            return {**GRAPHS, **PREFIX_GRAPHS, **GUIDE_GRAPHS}
        return {**GRAPHS, **PREFIX_GRAPHS}
    return dict(GRAPHS)


INTEGRITY_KEY = "integrity"
"""The manifest's seal: {"fields": {field: sha256 of its canonical JSON}, "bundle_hash": ...}."""

REQUIRED_KEYS = (
    "format_version",
    INTEGRITY_KEY,
    "variant",
    "opset",
    "model_hash",
    "files",
    "graphs",
    "model_config",
    "decoding",
    "vocabulary",
    "action_bins",
    "normalization",
    "image_preprocessing",
    "exporter",
    "greedy_decoder",
)


class BundleError(ValueError):
    """A deploy bundle is missing, incomplete, tampered with or inconsistent."""


# ---------------------------------------------------------------------------------- hashing


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (graphs can be hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_hash(graph_hashes: Mapping[str, str]) -> str:
    """One id for the network of a bundle: sha256 over the graphs' sha256s in a fixed order.

    Two bundles with the same ``model_hash`` run bit-identical graphs, whatever their folder,
    export date or manifest formatting.
    """
    text = "\n".join(f"{name}:{graph_hashes[name]}" for name in sorted(graph_hashes))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def field_digests(manifest: Mapping[str, Any]) -> dict[str, str]:
    """sha256 of every top-level manifest field but the seal itself, in canonical JSON."""
    return {
        k: hashlib.sha256(_canonical(v)).hexdigest()
        for k, v in manifest.items()
        if k != INTEGRITY_KEY
    }


def seal(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The ``integrity`` section of a finished manifest.

    Why every field and not only the graphs: ``model_hash`` says which network runs, but the
    rate (``control_hz``), the action modes (``decoding``), the guidance (``inference``) and the
    training seeds (``train_seeds``) decide what a robot does with it; a hand edit of any of them
    must not pass under the same identity. ``bundle_hash`` covers the graphs (through ``files``
    and ``model_hash``) and every other field, so it is what a server advertises."""
    fields = field_digests(manifest)
    text = "\n".join(f"{k}:{fields[k]}" for k in sorted(fields))
    return {"fields": fields, "bundle_hash": hashlib.sha256(text.encode()).hexdigest()}


def check_seal(manifest: Mapping[str, Any], where: Path) -> str:
    """Raise a BundleError naming the first field edited, added or removed after export;
    return the bundle hash."""
    recorded = manifest.get(INTEGRITY_KEY)
    if not isinstance(recorded, dict) or not isinstance(recorded.get("fields"), dict):
        raise BundleError(f"{where}: the manifest has no valid {INTEGRITY_KEY!r} section")
    want, got = recorded["fields"], field_digests(manifest)
    for key in sorted(set(want) | set(got)):
        if key not in got:
            change = "was removed"
        elif key not in want:
            change = "was added"
        elif want[key] != got[key]:
            change = "was edited"
        else:
            continue
        raise BundleError(
            f"{where}: manifest field {key!r} {change} after export, so the bundle no longer "
            "is what was exported and tested; re-export it (`uio2-robot export`) rather than "
            "editing manifest.json"
        )
    if seal(manifest)["bundle_hash"] != recorded.get("bundle_hash"):
        raise BundleError(f"{where}: the manifest's bundle_hash does not match its fields")
    return str(recorded["bundle_hash"])


# ---------------------------------------------------------------------------------- contents


def processor_sections(processor: Processor) -> dict[str, Any]:
    """The manifest's human-readable copy of the processor (checked against processor.json)."""
    sections = {
        "vocabulary": processor.vocab.to_dict(),
        "action_bins": {m: t.to_dict() for m, t in processor.action_tokenizers.items()},
        "normalization": {
            "proprio_key": processor.proprio_key,
            "proprio_mean": processor.proprio_mean.tolist(),
            "proprio_std": processor.proprio_std.tolist(),
            "formula": "(proprio - mean) / std",
        },
        "image_preprocessing": {
            "camera_keys": list(processor.camera_keys),
            "image_size": list(processor.image_size),
            "prompt_image_size": list(processor.prompt_image_size),
            "source": "RGB uint8 (h, w, 3)",
            "resize": "cv2.resize INTER_AREA to (H, W), aspect ratio not kept",
            "scale": "x * 2 / 255 - 1, float32 in [-1, 1]",
            "layout": "channels first (3, H, W)",
            "history": f"last {processor.max_history} frames, right-aligned, oldest first",
        },
        "decoding": {
            "bos_id": processor.vocab.bos_id,
            "strategy": "greedy, logits outside the action bins set to -inf",
            "action_horizon": processor.action_horizon,
            "action_modes": {
                m: {
                    "names": list(t.names),
                    "n_tokens": processor.n_action_tokens(m),
                    "allowed_ids": [t.first_bin_id, t.first_bin_id + t.n_bins],
                }
                for m, t in processor.action_tokenizers.items()
            },
        },
    }
    if processor.max_prompt_scenes:  # only then: older bundles' sections stay as they were
        sections["prompt_scenes"] = {
            "max_scenes": processor.max_prompt_scenes,
            "camera": processor.scene_key,
            "frame_size": list(processor.frame_size or ()),
            "rule": "a prompt image of exactly frame_size is also encoded as that camera's "
            "observation (crop, resize, scale) into scene_images, with its prompt-image slot in "
            "scene_image_index; the first max_scenes such images, the rest masked",
        }
    return sections


def check_processor_matches_config(processor: Processor, model_cfg: Mapping[str, Any]) -> None:
    """Raise a BundleError listing every size on which a processor and a model config disagree
    (`uio2_robot.tokenize.processor.model_mismatches`, torch-free)."""
    try:
        bad = model_mismatches(processor, model_cfg)
    except KeyError as exc:
        raise BundleError(f"model_config lacks the field {exc}") from None
    if bad:
        raise BundleError("processor and model config disagree: " + "; ".join(bad))


# ---------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name, shape (ints, or str for dynamic axes)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TensorSpec:
        return cls(str(d["name"]), str(d["dtype"]), tuple(d["shape"]))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Bundle:
    """A validated deploy bundle: paths, the manifest dict and the loaded Processor."""

    root: Path
    manifest: dict[str, Any]
    processor: Processor

    @property
    def variant(self) -> str:
        return str(self.manifest["variant"])

    @property
    def model_hash(self) -> str:
        return str(self.manifest["model_hash"])

    @property
    def bundle_hash(self) -> str:
        """The identity of the whole bundle: graphs, processor and every manifest field."""
        return str(self.manifest[INTEGRITY_KEY]["bundle_hash"])

    @property
    def graphs(self) -> tuple[str, ...]:
        """The graphs in this bundle (``bundle_graphs`` of its model config)."""
        return tuple(bundle_graphs(self.manifest["model_config"]))

    def graph_path(self, graph: str) -> Path:
        return self.root / self.manifest["files"][graph]["path"]

    def inputs(self, graph: str) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_dict(d) for d in self.manifest["graphs"][graph]["inputs"])

    def outputs(self, graph: str) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec.from_dict(d) for d in self.manifest["graphs"][graph]["outputs"])


def load_bundle(path: str | Path, verify_hashes: bool = True) -> Bundle:
    """Read and validate a bundle folder; raise a BundleError that names what is wrong.

    Checks, in order: the folder and manifest exist and parse; the format version is this
    code's; every required key is there; the variant and opset are known; every file listed
    exists and (``verify_hashes``) has the recorded sha256; ``model_hash`` matches the graph
    hashes; the graphs declare the expected inputs and outputs; processor.json loads, agrees
    with the manifest's copies of it, and fits the model config; no manifest field was edited,
    added or removed since export (``check_seal``).
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"deploy bundle folder not found: {root}")
    mpath = root / MANIFEST_FILE
    if not mpath.is_file():
        raise BundleError(f"{root} is not a deploy bundle: {MANIFEST_FILE} is missing")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{mpath} must hold a JSON object, got {type(manifest).__name__}")
    version = manifest.get("format_version")
    if version != BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{mpath}: bundle format_version {version!r} is not supported by this code "
            f"(expected {BUNDLE_FORMAT_VERSION}); re-export the checkpoint with `uio2-robot export`"
        )
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise BundleError(f"{mpath} lacks the keys {missing}")
    if manifest["variant"] not in VARIANTS:
        raise BundleError(f"{mpath}: unknown variant {manifest['variant']!r}; expected {VARIANTS}")
    if manifest["opset"] != OPSET:
        raise BundleError(f"{mpath}: opset {manifest['opset']!r}, this runtime expects {OPSET}")
    _check_files(root, manifest, verify_hashes)
    _check_graph_specs(manifest)
    processor = _load_processor(root, manifest)
    check_processor_matches_config(processor, manifest["model_config"])
    check_seal(manifest, mpath)  # last: structural problems above get their precise message
    return Bundle(root=root, manifest=manifest, processor=processor)


def _check_files(root: Path, manifest: dict[str, Any], verify_hashes: bool) -> None:
    files = manifest["files"]
    graphs = bundle_graphs(manifest.get("model_config") or {})
    wanted = [*graphs, "processor"]
    absent_entries = [k for k in wanted if k not in files]
    if absent_entries:
        raise BundleError(f"{root}/{MANIFEST_FILE}: 'files' lacks the entries {absent_entries}")
    for key in wanted:
        entry = files[key]
        rel = Path(str(entry.get("path", "")))
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise BundleError(f"{root}: file entry {key!r} has a bad path {str(rel)!r}")
        fpath = root / rel
        if not fpath.is_file():
            raise BundleError(f"{root}: {key} file {rel} listed in the manifest is missing")
        if verify_hashes:
            digest = sha256_file(fpath)
            if digest != entry.get("sha256"):
                raise BundleError(
                    f"{root}: sha256 of {rel} is {digest[:16]}..., the manifest records "
                    f"{str(entry.get('sha256'))[:16]}...: the file was changed or corrupted "
                    "after export"
                )
    graph_hashes = {g: files[g]["sha256"] for g in graphs}
    if model_hash(graph_hashes) != manifest["model_hash"]:
        raise BundleError(f"{root}: model_hash does not match the graph hashes in the manifest")


def _check_graph_specs(manifest: dict[str, Any]) -> None:
    for graph in bundle_graphs(manifest["model_config"]):
        ins, outs = graph_io_names(graph, manifest["model_config"])
        spec = manifest["graphs"].get(graph)
        if not isinstance(spec, dict):
            raise BundleError(f"manifest 'graphs' lacks {graph!r}")
        for kind, want in (("inputs", ins), ("outputs", outs)):
            got = tuple(d.get("name") for d in spec.get(kind, []))
            if got != want:
                raise BundleError(
                    f"manifest: {graph} {kind} are {list(got)}, expected {list(want)} (a bundle "
                    "from an older export: export it again from its checkpoint)"
                )
    _check_greedy_decoder(manifest)


def _check_greedy_decoder(manifest: dict[str, Any]) -> None:
    """decoder_greedy unrolls a fixed number of tokens and computes the logits of one id range:
    both must cover every action mode, and agree with the graph's output shapes."""
    greedy = manifest["greedy_decoder"]
    try:
        n, (lo, hi) = int(greedy["n_tokens"]), (int(i) for i in greedy["ids"])
    except (KeyError, TypeError, ValueError):
        raise BundleError(
            f"manifest: greedy_decoder must be {{'n_tokens': int, 'ids': [lo, hi]}}, got {greedy!r}"
        ) from None
    for graph in ("decoder_greedy", *GUIDE_GRAPHS):
        if graph not in manifest["graphs"]:
            continue
        tokens, logits = (d.get("shape") for d in manifest["graphs"][graph]["outputs"])
        if tokens != ["batch", n] or logits != ["batch", n, hi - lo]:
            raise BundleError(
                f"manifest: {graph} outputs {tokens} and {logits} do not match greedy_decoder "
                f"{greedy} (expected ['batch', {n}] and ['batch', {n}, {hi - lo}])"
            )
    for mode, spec in manifest["decoding"].get("action_modes", {}).items():
        first, end = spec["allowed_ids"]
        if spec["n_tokens"] > n or first < lo or end > hi:
            raise BundleError(
                f"manifest: decoder_greedy decodes {n} tokens over ids [{lo}, {hi}), too few or "
                f"too narrow for action mode {mode!r} ({spec['n_tokens']} tokens, ids "
                f"[{first}, {end}))"
            )


def _load_processor(root: Path, manifest: dict[str, Any]) -> Processor:
    ppath = root / manifest["files"]["processor"]["path"]
    try:
        processor = Processor.load(ppath)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{ppath}: unreadable processor ({exc})") from None
    ours = json.loads(json.dumps(processor_sections(processor)))  # tuples -> lists, as on disk
    drift = [k for k, v in ours.items() if manifest.get(k) != v]
    if drift:
        raise BundleError(
            f"{root}: the manifest's {drift} disagree with {ppath.name}; the bundle was edited "
            "by hand or assembled from two exports"
        )
    return processor

"""A bundle that does not match its manifest is refused at load, with an error that says why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from uio2_robot.policies.onnx_policy import OnnxPolicy
from uio2_robot.runtime.manifest import BundleError, load_bundle, sha256_file


@pytest.fixture
def copy(bundle: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(bundle, dst)
    return dst


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))


def test_intact_copy_loads(copy: Path) -> None:
    assert load_bundle(copy).variant == "fp32"


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="folder not found"):
        load_bundle(tmp_path / "missing")
    with pytest.raises(BundleError, match="manifest.json is missing"):
        load_bundle(tmp_path)


def test_format_version_mismatch(copy: Path) -> None:
    _edit_json(copy / "manifest.json", lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        load_bundle(copy)


def test_missing_graph_file(copy: Path) -> None:
    (copy / "decoder_step.onnx").unlink()
    with pytest.raises(BundleError, match="decoder_step file decoder_step.onnx .* is missing"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="is missing"):
        OnnxPolicy(copy)


def test_sha256_mismatch(copy: Path) -> None:
    graph = copy / "encoder.onnx"
    data = bytearray(graph.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in a weight
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 of encoder.onnx .* changed or corrupted"):
        load_bundle(copy)


def test_processor_edited_after_export(copy: Path) -> None:
    """processor.json edited (and its hash updated) no longer matches the manifest's copy."""
    _edit_json(copy / "processor.json", lambda p: p.update(proprio_std=[2.0] * 6))
    digest = sha256_file(copy / "processor.json")
    _edit_json(copy / "manifest.json", lambda m: m["files"]["processor"].update(sha256=digest))
    with pytest.raises(BundleError, match=r"manifest's \['normalization'\] disagree"):
        load_bundle(copy)


def test_processor_and_model_shapes_disagree(copy: Path) -> None:
    """A consistently edited processor whose history length the graphs were not built for."""
    _edit_json(copy / "processor.json", lambda p: p.update(max_history=5))
    digest = sha256_file(copy / "processor.json")

    def edit(m: dict) -> None:
        m["files"]["processor"]["sha256"] = digest
        m["image_preprocessing"]["history"] = "last 5 frames, right-aligned, oldest first"

    _edit_json(copy / "manifest.json", edit)
    with pytest.raises(BundleError, match="disagree: max history: processor 5 vs model 2"):
        load_bundle(copy)


def test_graph_io_spec_mismatch(copy: Path) -> None:
    def rename(m: dict) -> None:
        m["graphs"]["encoder"]["inputs"][0]["name"] = "ids"

    _edit_json(copy / "manifest.json", rename)
    with pytest.raises(BundleError, match="encoder inputs are"):
        load_bundle(copy)


def test_graph_inputs_must_fit_the_prompt_scenes_of_the_model(copy: Path) -> None:
    """A config with scene slots wants the scene inputs, which a graph without them lacks."""
    _edit_json(copy / "manifest.json", lambda m: m["model_config"].update(max_prompt_scenes=1))
    with pytest.raises(BundleError, match="encoder inputs are .* expected .*'scene_images'"):
        load_bundle(copy)


def test_greedy_decoder_must_cover_every_action_mode(copy: Path) -> None:
    def narrow(m: dict) -> None:
        lo, hi = m["greedy_decoder"]["ids"]
        m["greedy_decoder"]["ids"] = [lo + 1, hi]

    _edit_json(copy / "manifest.json", narrow)
    with pytest.raises(BundleError, match="do not match greedy_decoder"):
        load_bundle(copy)  # the graph's logits are wider than the range now claimed

    def shorten(m: dict) -> None:
        lo, hi = m["greedy_decoder"]["ids"]
        m["greedy_decoder"] = {"n_tokens": 2, "ids": [lo - 1, hi]}
        m["graphs"]["decoder_greedy"]["outputs"][0]["shape"] = ["batch", 2]
        m["graphs"]["decoder_greedy"]["outputs"][1]["shape"] = ["batch", 2, hi - lo + 1]

    _edit_json(copy / "manifest.json", shorten)
    with pytest.raises(BundleError, match="too few or too narrow for action mode"):
        load_bundle(copy)


def test_unknown_variant_and_opset(copy: Path) -> None:
    _edit_json(copy / "manifest.json", lambda m: m.update(variant="int4"))
    with pytest.raises(BundleError, match="unknown variant 'int4'"):
        load_bundle(copy)
    _edit_json(copy / "manifest.json", lambda m: m.update(variant="fp32", opset=13))
    with pytest.raises(BundleError, match="opset 13"):
        load_bundle(copy)


@pytest.mark.parametrize(
    ("field", "edit", "change"),
    [
        ("control_hz", lambda m: m.update(control_hz=50.0), "was added"),
        ("control_hz", lambda m: m.update(control_hz="fast"), "was added"),
        ("inference", lambda m: m.update(inference={"guide_place": True}), "was added"),
        ("train_seeds", lambda m: m.update(train_seeds=[0, 1]), "was added"),
        ("created_at", lambda m: m.pop("created_at"), "was removed"),
        ("source_checkpoint", lambda m: m["source_checkpoint"].update(path="/x"), "was edited"),
    ],
)
def test_edited_manifest_is_refused_naming_the_field(
    copy: Path, field: str, edit, change: str
) -> None:
    """Issue #24: an edited rate, guidance or seed list passed under the same model hash."""
    _edit_json(copy / "manifest.json", edit)
    with pytest.raises(BundleError, match=rf"manifest field '{field}' {change} after export"):
        load_bundle(copy)


def test_edited_manifest_is_not_served(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from uio2_robot.cli import main

    _edit_json(copy / "manifest.json", lambda m: m.update(control_hz=50.0))
    assert main(["serve", f"bundle={copy}", "duration_s=0.1"]) == 2
    err = capsys.readouterr().err
    assert "manifest field 'control_hz' was added" in err and str(copy) in err


def test_bundle_hash_covers_the_manifest_and_is_advertised(copy: Path, bundle: Path) -> None:
    from uio2_robot.deploy.metadata import metadata_for

    loaded = load_bundle(copy)
    assert loaded.bundle_hash == load_bundle(bundle).bundle_hash  # a copy is the same bundle
    meta = metadata_for("onnx", copy)
    assert meta.extra["bundle_hash"] == loaded.bundle_hash
    assert meta.extra["model_hash"] == loaded.model_hash != loaded.bundle_hash


def test_resealed_old_format_is_refused(copy: Path) -> None:
    """A bundle from before the seal (format 3) is refused, asking for a re-export."""

    def old(m: dict) -> None:
        m.pop("integrity")
        m["format_version"] = 3

    _edit_json(copy / "manifest.json", old)
    with pytest.raises(BundleError, match="format_version 3 is not supported.*re-export"):
        load_bundle(copy)


@pytest.fixture
def ed25519_keys(tmp_path: Path) -> tuple[Path, Path]:
    """A key pair the test holds (skipped where the optional `cryptography` is absent)."""
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    from cryptography.hazmat.primitives import serialization

    key = crypto.Ed25519PrivateKey.generate()
    private, public = tmp_path / "sign.pem", tmp_path / "sign.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _retamper(copy: Path) -> None:
    """What an attacker with write access does: change a graph, re-hash it, re-seal."""
    from uio2_robot.runtime.manifest import INTEGRITY_KEY, bundle_graphs, model_hash, seal

    graph = copy / "decoder_step.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")

    def rehash(m: dict) -> None:
        m["files"]["decoder_step"]["sha256"] = sha256_file(graph)
        graphs = bundle_graphs(m["model_config"])
        m["model_hash"] = model_hash({g: m["files"][g]["sha256"] for g in graphs})
        m.pop(INTEGRITY_KEY)
        m[INTEGRITY_KEY] = seal(m)

    _edit_json(copy / "manifest.json", rehash)


def test_signed_bundle_refuses_a_rehashed_tampered_graph(
    copy: Path, ed25519_keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from uio2_robot.cli import main
    from uio2_robot.runtime.signing import sign_bundle, verify_bundle_signature

    private, public = ed25519_keys
    sign_bundle(copy, private)
    verify_bundle_signature(load_bundle(copy), public)
    _retamper(copy)
    tampered = load_bundle(copy)  # the hashes alone cannot tell: they were all redone
    with pytest.raises(BundleError, match="changed after signing"):
        verify_bundle_signature(tampered, public)
    assert main(["serve", f"bundle={copy}", f"public_key={public}", "duration_s=0.1"]) == 2
    assert "changed after signing" in capsys.readouterr().err


def test_public_key_refuses_an_unsigned_bundle(
    copy: Path, ed25519_keys: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from uio2_robot.cli import main

    assert main(["serve", f"bundle={copy}", f"public_key={ed25519_keys[1]}", "duration_s=0.1"]) == 2
    assert "is not signed" in capsys.readouterr().err

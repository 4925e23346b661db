"""Optional Ed25519 signatures of deploy bundles, with a key the user holds.

Why: the manifest's hashes (``model_hash``, ``bundle_hash``) say what a bundle is, not who made
it; anyone who can write the folder can change a graph and re-hash it. A signature over the
``bundle_hash`` (which covers every graph, the processor and every manifest field) made with the
user's private key, and checked by ``serve`` when it is given the public key, closes that.

The keys are PEM files the user makes and keeps (e.g. ``openssl genpkey -algorithm ed25519 -out
sign.pem`` and ``openssl pkey -in sign.pem -pubout -out sign.pub.pem``); this module never
creates one. It uses the ``cryptography`` package, which uio2-robot does not require: without it
signing and verifying fail with a message that says so, and unsigned use is unchanged.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from uio2_robot.runtime.manifest import Bundle, BundleError, load_bundle

SIGNATURE_FILE = "signature.ed25519.json"


def _crypto() -> Any:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise BundleError(
            "bundle signatures need the 'cryptography' package (pip install cryptography)"
        ) from None
    return serialization, ed25519, InvalidSignature


def _load_key(path: str | Path, private: bool) -> Any:
    serialization, ed25519, _ = _crypto()
    data = Path(path).read_bytes()
    try:
        key = (
            serialization.load_pem_private_key(data, password=None)
            if private
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        kind = "private" if private else "public"
        raise BundleError(f"{path} is not a PEM {kind} key ({exc})") from None
    want = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, want):
        raise BundleError(f"{path} holds a {type(key).__name__}, expected an Ed25519 key")
    return key


def sign_bundle(bundle: str | Path | Bundle, private_key: str | Path) -> Path:
    """Verify ``bundle`` and write its signature file; returns the file's path."""
    loaded = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
    key = _load_key(private_key, private=True)
    signature = key.sign(loaded.bundle_hash.encode())
    out = loaded.root / SIGNATURE_FILE
    out.write_text(
        json.dumps(
            {
                "algorithm": "ed25519",
                "bundle_hash": loaded.bundle_hash,
                "signature": base64.b64encode(signature).decode(),
            },
            indent=2,
        )
    )
    return out


def verify_bundle_signature(bundle: Bundle, public_key: str | Path) -> None:
    """Raise a BundleError unless ``bundle`` carries a valid signature by ``public_key``."""
    _, _, invalid = _crypto()
    key = _load_key(public_key, private=False)
    path = bundle.root / SIGNATURE_FILE
    if not path.is_file():
        raise BundleError(
            f"{bundle.root} is not signed ({SIGNATURE_FILE} is missing) but a public key is "
            "configured: serve only bundles signed with its private key"
        )
    try:
        record = json.loads(path.read_text())
        signature = base64.b64decode(record["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path} is unreadable ({exc})") from None
    if record.get("bundle_hash") != bundle.bundle_hash:
        raise BundleError(
            f"{path} signs bundle {str(record.get('bundle_hash'))[:16]}..., this bundle is "
            f"{bundle.bundle_hash[:16]}...: it was changed after signing"
        )
    try:
        key.verify(signature, bundle.bundle_hash.encode())
    except invalid:
        raise BundleError(
            f"{path}: the signature does not verify with {public_key}: the bundle was changed "
            "after signing or signed with another key"
        ) from None

"""Bytes on the wire: msgpack frames with numpy arrays as a strict msgpack extension type.

Why msgpack and an extension type rather than pickle or a schema compiler: a robot client and
a policy server are different processes, often different machines and Python environments, so
what crosses the socket must be data, never code (pickle executes code on load), must not need
generated stubs on both sides (protobuf/gRPC), and must carry camera frames without base64
bloat. msgpack gives typed maps/lists/strings/binary for free; arrays ride in one extension type
whose header we validate before touching the payload.

Array extension (code ``ARRAY_EXT``) payload, all little-endian::

    u8 dtype code | u8 ndim | ndim x u32 dims | raw C-order bytes

Decoding checks the dtype code against a fixed allow-list, the rank, and that the byte count is
exactly ``prod(dims) * itemsize``; anything else is a :class:`WireError` naming the problem.
The returned arrays are read-only views into the received frame (no copy).
"""

from __future__ import annotations

import reprlib
import struct
from typing import Any

import msgpack
import numpy as np

WIRE_VERSION = 2
"""Bumped on any incompatible change of the message schema (see docs/deploy.md).

v2: the served action mode may be ``primitive`` (one pick-and-place or push per reply, executed
by the robot's own motion code); ``applied`` always carries the arm's per-tick delta commands."""

ARRAY_EXT = 1
MAX_NDIM = 6

# dtype code <-> little-endian numpy dtype; the allow-list of what may cross the wire.
_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<u1"),
    2: np.dtype("<i1"),
    3: np.dtype("<u2"),
    4: np.dtype("<i2"),
    5: np.dtype("<i4"),
    6: np.dtype("<i8"),
    7: np.dtype("<f2"),
    8: np.dtype("<f4"),
    9: np.dtype("<f8"),
    10: np.dtype("?"),
}
_CODE_BY_NAME: dict[str, int] = {dt.name: code for code, dt in _DTYPES.items()}


MAX_ECHO_CHARS = 64
"""At most this much of a client's input is echoed in an error message (``brief``)."""
MAX_ERROR_CHARS = 300
"""An error reply's message is cut to this length, whatever built it."""

_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple = 2, 3, 3, 3
_REPR.maxstring = _REPR.maxother = 40


def brief(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """A bounded repr of untrusted input for error messages and logs.

    Why not ``repr``: a client controls the value, and its plain repr can be hundreds of KB (a
    long string) or recurse past Python's limit (maps nested 1,000 deep), turning a bad request
    into an internal error, a huge reply and a huge log line."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails is still a bad value, not a server bug
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WireError(ValueError):
    """A message that cannot be accepted; ``code`` is the machine-readable error class.

    Codes: ``malformed`` (not decodable / wrong structure), ``too_large``, ``version``,
    ``unknown_type``, ``bad_request`` (a field of the wrong type or value), ``bad_obs``,
    ``bad_prompt``, ``no_episode``, ``policy_error``, ``server_full``, ``internal``.
    """

    def __init__(self, code: str, message: str) -> None:
        if len(message) > MAX_ERROR_CHARS:
            message = message[: MAX_ERROR_CHARS - 3] + "..."
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _encode_array(arr: np.ndarray) -> msgpack.ExtType:
    code = _CODE_BY_NAME.get(arr.dtype.name)
    if code is None:
        allowed = sorted(_CODE_BY_NAME)
        raise WireError(
            "bad_request", f"array dtype {arr.dtype} cannot be sent; expected one of {allowed}"
        )
    if arr.ndim > MAX_NDIM:
        raise WireError("bad_request", f"array has {arr.ndim} dims, at most {MAX_NDIM} allowed")
    arr = np.ascontiguousarray(arr, dtype=_DTYPES[code])  # also byte-swaps big-endian input
    header = struct.pack(f"<BB{arr.ndim}I", code, arr.ndim, *arr.shape)
    return msgpack.ExtType(ARRAY_EXT, header + arr.tobytes())


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot put a {type(obj).__name__} on the wire; expected plain data or arrays")


def decode_array(data: bytes) -> np.ndarray:
    """Parse one array extension payload, validating every header field."""
    if len(data) < 2:
        raise WireError("malformed", f"array payload of {len(data)} bytes is shorter than a header")
    code, ndim = data[0], data[1]
    dtype = _DTYPES.get(code)
    if dtype is None:
        raise WireError(
            "malformed", f"array dtype code {code} is unknown; expected one of {sorted(_DTYPES)}"
        )
    if ndim > MAX_NDIM:
        raise WireError("malformed", f"array has {ndim} dims, at most {MAX_NDIM} allowed")
    head = 2 + 4 * ndim
    if len(data) < head:
        raise WireError("malformed", f"array header claims {ndim} dims but the payload is short")
    shape = struct.unpack_from(f"<{ndim}I", data, 2)
    count = 1
    for d in shape:
        count *= d
    expected = count * dtype.itemsize
    if len(data) - head != expected:
        raise WireError(
            "malformed",
            f"array {dtype.name}{list(shape)} needs {expected} data bytes, got {len(data) - head}",
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=head).reshape(shape)


def _ext_hook(code: int, data: bytes) -> Any:
    if code != ARRAY_EXT:
        raise WireError("malformed", f"unknown msgpack extension type {code}; expected {ARRAY_EXT}")
    return decode_array(data)


def pack(message: dict[str, Any]) -> bytes:
    """Serialise one message (a dict of plain data and numpy arrays) to a binary frame."""
    try:
        return msgpack.packb(message, default=_default, use_bin_type=True)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError("bad_request", f"message cannot be encoded: {exc}") from None


def unpack(frame: bytes | bytearray | memoryview, max_bytes: int) -> dict[str, Any]:
    """Parse one binary frame into a message dict; any defect is a :class:`WireError`."""
    size = len(frame)
    if size > max_bytes:
        raise WireError("too_large", f"message of {size} bytes exceeds the limit of {max_bytes}")
    try:
        msg = msgpack.unpackb(
            frame,
            ext_hook=_ext_hook,
            raw=False,
            strict_map_key=True,
            use_list=True,
        )
    except WireError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types for corrupt input
        raise WireError(
            "malformed", f"not a msgpack frame ({type(exc).__name__}: {brief(str(exc))})"
        ) from None
    if not isinstance(msg, dict):
        raise WireError("malformed", f"a message must be a msgpack map, got {type(msg).__name__}")
    return msg

"""The wire codec: arrays round-trip exactly; anything malformed is a WireError, never a crash."""

from __future__ import annotations

import struct

import msgpack
import numpy as np
import pytest

from uio2_robot.deploy.wire import ARRAY_EXT, WireError, decode_array, pack, unpack

LIMIT = 1 << 20


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.linspace(-1, 1, 7, dtype=np.float32),
        np.array([[1.5, np.inf]], dtype=np.float64),
        np.array([True, False]),
        np.arange(6, dtype=np.int64).reshape(3, 2)[::2],  # non-contiguous
        np.arange(4, dtype=">i4"),  # big-endian input is sent little-endian
        np.zeros((0, 5), dtype=np.float32),
        np.float16(3.5) * np.ones((2, 2), np.float16),
    ],
)
def test_arrays_round_trip_with_dtype_and_shape(arr: np.ndarray) -> None:
    msg = unpack(pack({"a": arr, "nested": [{"b": arr}], "s": "x", "n": np.int64(3)}), LIMIT)
    for got in (msg["a"], msg["nested"][0]["b"]):
        assert got.shape == arr.shape
        assert got.dtype == arr.dtype.newbyteorder("<") or got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)
    assert msg["s"] == "x" and msg["n"] == 3 and isinstance(msg["n"], int)


def test_unsupported_values_cannot_be_sent() -> None:
    with pytest.raises(WireError, match="dtype object cannot be sent"):
        pack({"a": np.array([object()], dtype=object)})
    with pytest.raises(WireError, match="complex128 cannot be sent"):
        pack({"a": np.zeros(2, np.complex128)})
    with pytest.raises(WireError, match="cannot be encoded"):
        pack({"a": {1, 2}})


def _ext(payload: bytes) -> bytes:
    return msgpack.packb({"a": msgpack.ExtType(ARRAY_EXT, payload)}, use_bin_type=True)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"\x01", "shorter than a header"),
        (bytes([99, 1]) + struct.pack("<I", 1) + b"\x00", "dtype code 99 is unknown"),
        (bytes([8, 9]) + b"\x00" * 36, "at most 6 allowed"),
        (bytes([8, 2]) + struct.pack("<I", 2), "payload is short"),
        (bytes([8, 1]) + struct.pack("<I", 3) + b"\x00" * 8, "needs 12 data bytes, got 8"),
        (bytes([1, 1]) + struct.pack("<I", 2**31) + b"\x00", "needs 2147483648 data bytes"),
    ],
)
def test_bad_array_headers_are_named(payload: bytes, needle: str) -> None:
    with pytest.raises(WireError, match=needle) as exc:
        unpack(_ext(payload), LIMIT)
    assert exc.value.code == "malformed"


def test_structural_defects() -> None:
    with pytest.raises(WireError, match="unknown msgpack extension type 7"):
        unpack(msgpack.packb({"a": msgpack.ExtType(7, b"")}), LIMIT)
    with pytest.raises(WireError, match="must be a msgpack map, got list"):
        unpack(msgpack.packb([1, 2]), LIMIT)
    with pytest.raises(WireError, match="not a msgpack frame"):
        unpack(b"\xc1\xc1\xc1", LIMIT)
    with pytest.raises(WireError, match="not a msgpack frame"):
        unpack(msgpack.packb({"a": 1}) + b"trailing", LIMIT)
    with pytest.raises(WireError, match="exceeds the limit of 10") as exc:
        unpack(b"x" * 11, 10)
    assert exc.value.code == "too_large"


def test_random_corruption_only_ever_raises_wire_error() -> None:
    """Flip, cut and splice bytes of a valid frame: decoding fails cleanly or succeeds."""
    rng = np.random.default_rng(0)
    good = pack({"v": 1, "type": "infer", "obs": {"img": np.ones((8, 8, 3), np.uint8)}, "t": 1.5})
    for _ in range(2000):
        frame = bytearray(good)
        op = rng.integers(3)
        if op == 0:
            for i in rng.integers(0, len(frame), size=rng.integers(1, 6)):
                frame[i] = int(rng.integers(256))
        elif op == 1:
            frame = frame[: rng.integers(0, len(frame))]
        else:
            frame = frame + bytearray(rng.integers(0, 256, size=rng.integers(1, 20)).tolist())
        try:
            msg = unpack(bytes(frame), LIMIT)
        except WireError:
            continue
        assert isinstance(msg, dict)


def test_decoded_arrays_are_read_only_views() -> None:
    arr = decode_array(bytes([8, 1]) + struct.pack("<I", 2) + np.ones(2, np.float32).tobytes())
    assert not arr.flags.writeable
    np.testing.assert_array_equal(arr, [1.0, 1.0])

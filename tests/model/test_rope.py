"""Rotary embeddings: relative-position property, 1D/2D selection, rows vs columns."""

from __future__ import annotations

import torch

from uio2_robot.model.rope import RotaryEmbedding, apply_rope, rotation_matrix

DH = 16


def _rotate(rope, x, pos, is_2d):
    """x (Dh,) at one position -> rotated (Dh,)."""
    positions = torch.tensor([[list(pos)]], dtype=torch.int64)  # (1, 1, 2)
    flag = torch.tensor([[is_2d]])
    cos, sin = rope(positions, flag)
    return apply_rope(x.view(1, 1, 1, DH), cos, sin).view(DH)


def test_1d_dot_product_depends_only_on_the_offset():
    rope = RotaryEmbedding(DH)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(DH, generator=g), torch.randn(DH, generator=g)
    for m, n in [(0, 3), (7, 2), (5, 5)]:
        ref = _rotate(rope, q, (m, 0), False) @ _rotate(rope, k, (n, 0), False)
        for shift in (1, 13, 250):
            got = _rotate(rope, q, (m + shift, 0), False) @ _rotate(rope, k, (n + shift, 0), False)
            torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    # ... and does change with the offset
    a = _rotate(rope, q, (0, 0), False) @ _rotate(rope, k, (1, 0), False)
    b = _rotate(rope, q, (0, 0), False) @ _rotate(rope, k, (4, 0), False)
    assert not torch.isclose(a, b, atol=1e-3)


def test_2d_dot_product_depends_only_on_row_and_column_offsets():
    rope = RotaryEmbedding(DH)
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(DH, generator=g), torch.randn(DH, generator=g)
    ref = _rotate(rope, q, (1, 2), True) @ _rotate(rope, k, (3, 0), True)
    for dr, dc in [(1, 0), (0, 5), (4, 7)]:
        got = _rotate(rope, q, (1 + dr, 2 + dc), True) @ _rotate(rope, k, (3 + dr, dc), True)
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)


def test_2d_tells_rows_from_columns():
    rope = RotaryEmbedding(DH)
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(DH, generator=g), torch.randn(DH, generator=g)
    q0 = _rotate(rope, q, (0, 0), True)
    one_row_down = q0 @ _rotate(rope, k, (1, 0), True)
    one_col_right = q0 @ _rotate(rope, k, (0, 1), True)
    assert not torch.isclose(one_row_down, one_col_right, atol=1e-3)
    # The row rotates only the first half of the head, the column only the second half.
    by_row, by_col = _rotate(rope, q, (3, 0), True), _rotate(rope, q, (0, 3), True)
    torch.testing.assert_close(by_row[DH // 2 :], q[DH // 2 :])
    torch.testing.assert_close(by_col[: DH // 2], q[: DH // 2])
    assert not torch.allclose(by_row[: DH // 2], q[: DH // 2])


def test_1d_ignores_the_second_coordinate_and_matches_forward_1d():
    rope = RotaryEmbedding(DH)
    q = torch.randn(DH)
    torch.testing.assert_close(_rotate(rope, q, (4, 0), False), _rotate(rope, q, (4, 9), False))
    pos = torch.tensor([[0, 3, 11]])
    cos, sin = rope.forward_1d(pos)
    cos2, sin2 = rope(
        torch.stack([pos, torch.zeros_like(pos)], -1), torch.zeros(1, 3, dtype=torch.bool)
    )
    torch.testing.assert_close(cos, cos2)
    torch.testing.assert_close(sin, sin2)


def test_rotation_preserves_norm_and_position_zero_is_identity():
    rope = RotaryEmbedding(DH)
    x = torch.randn(2, 3, 5, DH)
    pos = torch.randint(0, 100, (2, 5, 2))
    flag = torch.rand(2, 5) > 0.5
    cos, sin = rope(pos, flag)
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
    cos0, sin0 = rope(torch.zeros(2, 5, 2, dtype=torch.int64), flag)
    torch.testing.assert_close(apply_rope(x, cos0, sin0), x)


def test_rotation_matrix_rotates_a_token_like_apply_rope():
    """The exported decoder rotates a single token by one MatMul: same result as apply_rope."""
    rope = RotaryEmbedding(DH)
    x = torch.randn(3, 4, 1, DH)  # (B, H, one token, Dh)
    cos, sin = rope.forward_1d(torch.tensor([[0], [5], [31]]))  # (B, 1, 1, Dh)
    rotation = rotation_matrix(cos, sin)
    assert rotation.shape == (3, 1, DH, DH)
    torch.testing.assert_close(x @ rotation, apply_rope(x, cos, sin))
    torch.testing.assert_close(rotation[0, 0], torch.eye(DH))  # position 0 is the identity

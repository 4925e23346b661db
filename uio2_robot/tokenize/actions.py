"""Action tokenizer: each action dimension becomes one value-bin token.

UIO2 writes robot actions with the same value bins it uses for locations; RT-1/RT-2/OpenVLA use
256 uniform bins per dimension, OpenVLA after scaling by the data's 1st-99th percentiles. Both
are available here: ``n_bins`` is configurable (it maps onto the first ``n_bins`` value-bin ids of
the vocabulary) and the range is either configured (``uniform``) or fit from data (``fit``).

Binning rule, per dimension with range ``[low, high)`` and width ``w = (high - low) / n_bins``::

    bin(v)    = clip(floor((v - low) / w), 0, n_bins - 1)
    centre(i) = low + (i + 0.5) * w

so a value inside the range decodes to within ``w / 2`` of itself; a value below ``low`` goes to
bin 0 and a value at or above ``high`` to bin ``n_bins - 1`` (exact clipping: decoding returns
that end bin's centre, never the out-of-range value).

Wrapping dimensions (yaw, whose range is a full turn ``[-pi, pi)``) are *wrapped* into the
range instead of clipped: ``v -> low + (v - low) mod (high - low)``, so ``pi + 0.1`` is the same
bin as ``-pi + 0.1`` rather than the last bin. Their round-trip error is measured as the
circular distance. The bins themselves are not made symmetric about 0; with an even ``n_bins``
an angle of exactly 0 lies on a bin edge and decodes to ``+w/2``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from uio2_robot.tokenize.vocab import Vocabulary


@dataclass(frozen=True)
class ActionTokenizer:
    """Per-dimension uniform bins over ``[low, high)``; ids start at ``first_bin_id``."""

    names: tuple[str, ...]
    low: np.ndarray  # (D,) float64
    high: np.ndarray  # (D,) float64
    n_bins: int
    first_bin_id: int
    wrap: tuple[bool, ...]

    def __post_init__(self) -> None:
        names = tuple(str(n) for n in self.names)
        object.__setattr__(self, "names", names)
        d = len(names)
        if d == 0 or len(set(names)) != d:
            raise ValueError(f"action names must be non-empty and distinct, got {names}")
        low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if low.shape != (d,) or high.shape != (d,):
            raise ValueError(
                f"action bounds must have shape ({d},) for names {names}; "
                f"got low {low.shape}, high {high.shape}"
            )
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"action bounds must be finite; got low {low}, high {high}")
        if np.any(high <= low):
            bad = [names[i] for i in np.flatnonzero(high <= low)]
            raise ValueError(f"action bounds need high > low; not so for {bad}")
        low.setflags(write=False)
        high.setflags(write=False)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        wrap = tuple(bool(w) for w in self.wrap)
        if len(wrap) != d:
            raise ValueError(f"wrap must have one flag per dimension ({d}), got {len(wrap)}")
        object.__setattr__(self, "wrap", wrap)
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, int | np.integer):
            raise ValueError(f"n_bins must be an int, got {self.n_bins!r}")
        if self.n_bins < 2:
            raise ValueError(f"n_bins must be >= 2, got {self.n_bins}")
        object.__setattr__(self, "n_bins", int(self.n_bins))
        object.__setattr__(self, "first_bin_id", int(self.first_bin_id))

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def uniform(
        cls,
        names: Sequence[str],
        low: Sequence[float] | np.ndarray,
        high: Sequence[float] | np.ndarray,
        vocab: Vocabulary,
        n_bins: int | None = None,
        wrap: Sequence[bool] | None = None,
    ) -> ActionTokenizer:
        """Bins over configured bounds; ``n_bins`` defaults to all of the vocabulary's bins."""
        n = vocab.n_bins if n_bins is None else n_bins
        _check_fits(n, vocab)
        return cls(
            names=tuple(names),
            low=np.asarray(low, dtype=np.float64),
            high=np.asarray(high, dtype=np.float64),
            n_bins=n,
            first_bin_id=vocab.first_bin_id,
            wrap=tuple(wrap) if wrap is not None else (False,) * len(names),
        )

    @classmethod
    def from_percentiles(
        cls,
        low: np.ndarray,
        high: np.ndarray,
        names: Sequence[str],
        vocab: Vocabulary,
        n_bins: int | None = None,
        wrap_bounds: dict[str, tuple[float, float]] | None = None,
    ) -> ActionTokenizer:
        """Bins over the data's percentile range per dimension (OpenVLA's 1st-99th): ``low`` and
        ``high`` (D,) are the store's statistics (``NormStats.p01``/``p99``, computed once by
        the store), not refit here.

        Dimensions named in ``wrap_bounds`` are circular and keep the given full-period range.
        A dimension whose percentiles coincide (constant in the data) gets a tiny range around
        that constant, so it still decodes to the constant.
        """
        names = tuple(names)
        low = np.array(low, dtype=np.float64)
        high = np.array(high, dtype=np.float64)
        if low.shape != (len(names),) or high.shape != (len(names),):
            raise ValueError(
                f"percentile ranges must be ({len(names)},) each for {names}, got {low.shape} "
                f"and {high.shape}"
            )
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))) or np.any(high < low):
            raise ValueError(f"percentile ranges must be finite with low <= high: {low}, {high}")
        eps = np.maximum(1e-6, 1e-6 * np.abs(low))
        flat_dims = high - low < eps
        low = np.where(flat_dims, low - eps, low)
        high = np.where(flat_dims, high + eps, high)
        wrap_bounds = dict(wrap_bounds or {})
        unknown = set(wrap_bounds) - set(names)
        if unknown:
            raise ValueError(f"wrap_bounds names {sorted(unknown)} are not action names {names}")
        wrap = []
        for i, name in enumerate(names):
            if name in wrap_bounds:
                low[i], high[i] = wrap_bounds[name]
            wrap.append(name in wrap_bounds)
        return cls.uniform(names, low, high, vocab, n_bins=n_bins, wrap=wrap)

    @classmethod
    def for_action_mode(
        cls, mode: str, vocab: Vocabulary, n_bins: int | None = None
    ) -> ActionTokenizer:
        """Uniform bins over the suite's action bounds (``uio2_robot.contracts``).

        Yaw dimensions of the primitive mode span a full turn and wrap; the delta mode's
        ``dyaw`` is a bounded increment and is clipped like the others.
        """
        from uio2_robot import contracts as spaces  # a numpy-only leaf: no envs, no gymnasium

        names = spaces.action_names(mode)
        if mode == "primitive":
            low, high = spaces.PRIMITIVE_LOW, spaces.PRIMITIVE_HIGH
            wrap = [n.startswith("yaw") for n in names]
            low = np.array(low, dtype=np.float64)
            high = np.array(high, dtype=np.float64)
            for i, w in enumerate(wrap):  # exact full turn, not the float32-rounded pi
                if w:
                    low[i], high[i] = spaces.YAW_RANGE
        else:
            low, high = spaces.DELTA_LOW, spaces.DELTA_HIGH
            wrap = [False] * len(names)
        return cls.uniform(names, low, high, vocab, n_bins=n_bins, wrap=wrap)

    # ---- properties ---------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def bin_width(self) -> np.ndarray:
        """(D,) width of one bin per dimension."""
        return (self.high - self.low) / self.n_bins

    @property
    def token_ids(self) -> np.ndarray:
        """(n_bins,) the ids this tokenizer emits: the ``allowed`` set for constrained decoding."""
        return np.arange(self.first_bin_id, self.first_bin_id + self.n_bins, dtype=np.int64)

    # ---- encode / decode ------------------------------------------------------------------------
    def bin_indices(self, actions: np.ndarray) -> np.ndarray:
        """(..., D) float -> (..., D) int64 bin indices in [0, n_bins)."""
        a = _as_actions(actions, self.dim, "actions")
        a = self._wrap(a)
        idx = np.floor((a - self.low) / self.bin_width)
        return np.clip(idx, 0, self.n_bins - 1).astype(np.int64)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """(..., D) float actions -> (..., D) int64 vocabulary ids (value-bin tokens)."""
        return self.bin_indices(actions) + self.first_bin_id

    def decode(self, ids: np.ndarray | Sequence[int]) -> np.ndarray:
        """(..., D) vocabulary ids -> (..., D) float32 bin centres."""
        arr = np.asarray(ids)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"action token ids must be integers, got dtype {arr.dtype}")
        if arr.ndim == 0 or arr.shape[-1] != self.dim:
            raise ValueError(
                f"action token ids must have trailing dimension {self.dim} {self.names}, "
                f"got shape {arr.shape}"
            )
        idx = arr.astype(np.int64) - self.first_bin_id
        bad = (idx < 0) | (idx >= self.n_bins)
        if np.any(bad):
            raise ValueError(
                f"action token ids must be value bins in [{self.first_bin_id}, "
                f"{self.first_bin_id + self.n_bins}); got {np.unique(arr[bad])[:8].tolist()}"
            )
        return (self.low + (idx + 0.5) * self.bin_width).astype(np.float32)

    def round_trip_report(self, actions: np.ndarray) -> dict[str, dict[str, float]]:
        """Per named dimension: max and mean abs error of decode(encode(a)) vs a.

        Wrapping dimensions use the circular distance. Also reports the bin width and the
        fraction of values that were outside the range (those are clipped, so their error
        can exceed half a bin).
        """
        a = _as_actions(actions, self.dim, "actions").reshape(-1, self.dim)
        if a.shape[0] == 0:
            raise ValueError("round_trip_report needs at least one action")
        err = self.decode(self.encode(a)).astype(np.float64) - a
        period = self.high - self.low
        wrap = np.asarray(self.wrap)
        err = np.where(wrap, (err + period / 2) % period - period / 2, err)
        err = np.abs(err)
        outside = self.out_of_range(a)
        report = {}
        for i, name in enumerate(self.names):
            report[name] = {
                "max_abs": float(err[:, i].max()),
                "mean_abs": float(err[:, i].mean()),
                "bin_width": float(self.bin_width[i]),
                "clipped_fraction": float(outside[:, i].mean()),
            }
        return report

    def out_of_range(self, actions: np.ndarray) -> np.ndarray:
        """(..., D) bool: the values the bins clip, those outside ``[low, high]`` (``high``
        itself decodes to within half a bin, like any value inside); never a wrapping
        dimension, whose values wrap into the range instead."""
        a = _as_actions(actions, self.dim, "actions")
        return ~np.asarray(self.wrap) & ((a < self.low) | (a > self.high))

    def _wrap(self, a: np.ndarray) -> np.ndarray:
        if not any(self.wrap):
            return a
        period = self.high - self.low
        wrapped = self.low + np.mod(a - self.low, period)
        # mod can round up to exactly `period` for values a hair below low: keep it in range
        wrapped = np.where(wrapped >= self.high, self.low, wrapped)
        return np.where(np.asarray(self.wrap), wrapped, a)

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "n_bins": self.n_bins,
            "first_bin_id": self.first_bin_id,
            "wrap": list(self.wrap),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionTokenizer:
        missing = {"names", "low", "high", "n_bins", "first_bin_id", "wrap"} - set(d)
        if missing:
            raise ValueError(f"action tokenizer dict is missing {sorted(missing)}")
        return cls(
            names=tuple(d["names"]),
            low=np.asarray(d["low"], dtype=np.float64),
            high=np.asarray(d["high"], dtype=np.float64),
            n_bins=int(d["n_bins"]),
            first_bin_id=int(d["first_bin_id"]),
            wrap=tuple(d["wrap"]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ActionTokenizer):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.names, self.n_bins, self.first_bin_id))


def _check_fits(n_bins: int, vocab: Vocabulary) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer):
        raise ValueError(f"n_bins must be an int, got {n_bins!r}")
    if not 2 <= n_bins <= vocab.n_bins:
        raise ValueError(
            f"n_bins must be in [2, {vocab.n_bins}] (the vocabulary's value bins), got {n_bins}"
        )


def _as_actions(actions: np.ndarray, dim: int, what: str) -> np.ndarray:
    """Validate (..., D) finite float actions; return them as float64."""
    arr = np.asarray(actions)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    if arr.ndim == 0 or arr.shape[-1] != dim:
        raise ValueError(f"{what} must have trailing dimension {dim}, got shape {arr.shape}")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr)
    if not np.all(finite):
        dims = sorted(set(np.nonzero(~finite)[-1].tolist()))
        raise ValueError(
            f"{what} contain NaN or Inf (in dimensions {dims}); expected finite values"
        )
    return arr

"""Training windows over one or more stores, as a torch Dataset.

A sample is the frame t of an episode: the observation history ``t-n+1 .. t`` (oldest first)
and the action chunk ``t .. t+m-1``. At episode edges the history is padded by repeating the
first frame and the chunk by repeating the last action, each with mask False, so every sample
has static shapes (the encoder and the exported graphs need them) and losses can skip padding.

The train/validation split is by episode (no frame of a validation episode is ever trained on)
and by a hash of the episode's identity (task, level, action mode, seed), so it is the same on
every machine and an episode keeps its side when a store grows or stores are merged.

Zarr handles are opened lazily in each process, so the dataset works with DataLoader workers
under fork or spawn; small keys (action, proprio) are loaded whole once per process and images
are read per window from 16-frame chunks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from uio2_robot.trajectories.episode import ACTION_KEY, NON_OBS_KEYS, PromptSegment
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.integrity import require_sound
from uio2_robot.trajectories.store import EpisodeStore

StoreLike = str | os.PathLike[str] | EpisodeStore
Sample = dict[str, Any]
_PROMPT_CACHE_SIZE = 4096


def split_fraction(meta: dict[str, Any], index: int, split_seed: int) -> float:
    """A uniform number in [0, 1) fixed by the episode's identity; < val_fraction means val."""
    ident = meta["seed"] if meta["seed"] is not None else f"index{index}"
    key = f"{split_seed}|{meta['task']}|{meta['level']}|{meta['action_mode']}|{ident}"
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def split_episodes(metas: list[dict[str, Any]], val_fraction: float, split_seed: int) -> np.ndarray:
    """Boolean (E,) mask, True = validation episode. With two or more episodes and
    0 < val_fraction < 1 both sides get at least one episode."""
    if not 0.0 <= val_fraction <= 1.0:
        raise StoreError(f"val_fraction is {val_fraction}, expected a number in [0, 1]")
    u = np.array([split_fraction(m, i, split_seed) for i, m in enumerate(metas)])
    is_val = u < val_fraction
    if len(u) >= 2 and 0.0 < val_fraction < 1.0:
        if not is_val.any():
            is_val[np.argmin(u)] = True
        if is_val.all():
            is_val[np.argmax(u)] = False
    return is_val


class WindowDataset(Dataset):
    """Windows of ``n_obs_history`` observations and ``action_chunk`` actions from stores.

    ``keys`` are the observation keys to load (default: every key except action and reward).
    ``weights`` (one per store) set the mixing proportions; ``self.weights`` holds them
    normalised (without weights: proportional to each store's frames, i.e. every frame equally
    likely), and ``sampler()`` draws by them. ``task_weights`` (task name -> weight, default 1)
    re-weight the frames of each task inside every store, keeping the stores' shares: a store that
    holds one task's long episodes next to another's short ones need not be split to rebalance
    them. Items are dicts of numpy arrays plus "prompt" (list of
    segments) and "meta" (dict); use ``collate`` in the DataLoader.
    """

    def __init__(
        self,
        stores: Sequence[StoreLike],
        *,
        weights: Sequence[float] | None = None,
        n_obs_history: int = 2,
        action_chunk: int = 1,
        keys: Sequence[str] | None = None,
        split: str = "train",
        val_fraction: float = 0.1,
        split_seed: int = 0,
        transform: Callable[[Sample], Sample] | None = None,
        task_weights: Mapping[str, float] | None = None,
    ) -> None:
        if not stores:
            raise StoreError("WindowDataset needs at least one store")
        if split not in ("train", "val", "all"):
            raise StoreError(f"split is {split!r}, expected 'train', 'val' or 'all'")
        if n_obs_history < 1 or action_chunk < 1:
            raise StoreError(
                f"n_obs_history={n_obs_history} and action_chunk={action_chunk} must be >= 1"
            )
        self.paths = [str(s.path) if isinstance(s, EpisodeStore) else str(s) for s in stores]
        self.n_obs_history = n_obs_history
        self.action_chunk = action_chunk
        self.split = split
        self.transform = transform

        opened = [EpisodeStore.open(p, mode="r") for p in self.paths]
        for st in opened:  # a missing chunk would read as zeros: refuse, naming it
            require_sound(st, deep=False)
        schema0 = opened[0].schema
        if keys is None:
            keys = [k for k in schema0.keys if k not in NON_OBS_KEYS]
        self.keys = list(keys)
        for path, st in zip(self.paths, opened, strict=True):
            for k in [*self.keys, ACTION_KEY]:
                if k not in st.schema.keys:
                    raise StoreError(f"store {path} has no key {k!r}; it has {st.data_keys}")
                if st.schema.keys[k] != schema0.keys[k]:
                    raise StoreError(
                        f"key {k!r} is {st.schema.keys[k]} in {path} but {schema0.keys[k]} in "
                        f"{self.paths[0]}; stores mixed in one dataset need the same shapes and dtypes"
                    )
        self.low_dim_keys = [k for k in [*self.keys, ACTION_KEY] if schema0.keys[k].is_low_dim]

        # Per store: the split's episodes, their (start, end) frames, and one sample per frame.
        self._episodes: list[np.ndarray] = []  # (E_s,) episode indices in the split
        self._bounds: list[np.ndarray] = []  # (E_s, 2) start/end frames of those episodes
        self._metas: list[list[dict[str, Any]]] = []
        self._first_sample: list[
            np.ndarray
        ] = []  # (E_s,) first sample of each episode in the store
        sample_store, sample_ep = [], []
        for s, st in enumerate(opened):
            metas = st.all_meta()
            is_val = split_episodes(metas, val_fraction, split_seed)
            chosen = {"train": ~is_val, "val": is_val, "all": np.ones_like(is_val)}[split]
            eps = np.flatnonzero(chosen)
            bounds = np.array([st.episode_bounds(int(e)) for e in eps], dtype=np.int64).reshape(
                -1, 2
            )
            self._episodes.append(eps)
            self._bounds.append(bounds)
            self._metas.append([metas[int(e)] for e in eps])
            lengths = bounds[:, 1] - bounds[:, 0]
            self._first_sample.append(
                np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
            )
            sample_store.append(np.full(int(lengths.sum()), s, dtype=np.int64))
            sample_ep.append(np.repeat(np.arange(len(eps), dtype=np.int64), lengths))
        # (N,) store id and (N,) position of the episode in that store's split, per sample
        self._sample_store = np.concatenate(sample_store)
        self._sample_ep = np.concatenate(sample_ep)
        counts = np.array([len(x) for x in sample_store], dtype=np.int64)
        self.store_offsets = np.concatenate([[0], np.cumsum(counts)])  # (S+1,)
        if len(self._sample_store) == 0:
            raise StoreError(
                f"the {split!r} split of {self.paths} is empty (val_fraction={val_fraction}); "
                f"expected at least one episode"
            )
        self.weights = self._check_weights(weights, counts)
        self.sample_cdf = self._task_cdf(task_weights) if task_weights else None
        self._local: dict[str, Any] = {}  # per-process state, rebuilt after fork/spawn

    # ------------------------------------------------------------------ public
    def __len__(self) -> int:
        return len(self._sample_store)

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        s = int(self._sample_store[index])
        k = int(self._sample_ep[index])
        start, end = (int(x) for x in self._bounds[s][k])
        t = index - int(self.store_offsets[s]) - int(self._first_sample[s][k])  # frame in episode
        length = end - start
        state = self._state()
        store = state["stores"][s]

        hist = np.arange(t - self.n_obs_history + 1, t + 1)  # (n,) frames, oldest first
        obs_mask = hist >= 0
        hist_idx = np.maximum(hist, 0)
        chunk = np.arange(t, t + self.action_chunk)  # (m,)
        action_mask = chunk < length
        chunk_idx = np.minimum(chunk, length - 1)

        sample: Sample = {}
        image_keys = [k for k in self.keys if k not in self.low_dim_keys]
        lo = int(hist_idx[0])
        if image_keys:
            window = store.get_window(int(self._episodes[s][k]), lo, t + 1 - lo, image_keys)
            for key in image_keys:
                sample[key] = window[key][hist_idx - lo]  # (n, *shape), first frame repeated
        for key in self.low_dim_keys:
            arr = state["low_dim"][s][key]  # (N_s, *shape) whole key in memory
            idx = hist_idx if key != ACTION_KEY else chunk_idx
            sample[key] = arr[start + idx]
        sample["obs_mask"] = obs_mask
        sample["action_mask"] = action_mask
        sample["prompt"] = self._prompt(s, k)
        meta = dict(self._metas[s][k])
        meta.update(store=s, episode=int(self._episodes[s][k]), frame=t)
        sample["meta"] = meta
        return self.transform(sample) if self.transform is not None else sample

    def sampler(self, num_samples: int | None = None, seed: int = 0) -> MixtureSampler:
        """A sampler that draws stores by ``self.weights``, then frames uniformly within them
        (by ``task_weights`` where given)."""
        return MixtureSampler(
            self.store_offsets, self.weights, num_samples or len(self), seed, self.sample_cdf
        )

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n,) sample indices drawn with replacement by the store and task weights."""
        return draw_samples(rng, n, self.store_offsets, self.weights, self.sample_cdf)

    def task_of_samples(self) -> np.ndarray:
        """(N,) the task name of every sample's episode."""
        tasks = [
            np.repeat(np.array([m["task"] for m in metas], dtype=object), b[:, 1] - b[:, 0])
            for metas, b in zip(self._metas, self._bounds, strict=True)
        ]
        return np.concatenate(tasks) if tasks else np.zeros(0, dtype=object)

    def episodes(self, store: int = 0) -> list[int]:
        """Episode indices of ``store`` in this split."""
        return [int(e) for e in self._episodes[store]]

    # ------------------------------------------------------------------ internals
    def _state(self) -> dict[str, Any]:
        """Open stores and load small keys once per process (DataLoader workers included)."""
        if self._local.get("pid") != os.getpid():
            stores = [EpisodeStore.open(p, mode="r") for p in self.paths]
            low_dim = [{k: st.read_key(k) for k in self.low_dim_keys} for st in stores]
            self._local = {"pid": os.getpid(), "stores": stores, "low_dim": low_dim, "prompts": {}}
        return self._local

    def _prompt(self, s: int, k: int) -> list[PromptSegment]:
        cache = self._state()["prompts"]
        if (s, k) not in cache:
            if len(cache) >= _PROMPT_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[(s, k)] = self._state()["stores"][s].prompt(int(self._episodes[s][k]))
        return list(cache[(s, k)])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_local"] = {}  # zarr handles stay in the process that opened them
        return state

    def _check_weights(self, weights: Sequence[float] | None, counts: np.ndarray) -> np.ndarray:
        """(S,) store probabilities summing to 1; without weights, proportional to frames."""
        if weights is None:
            return counts / counts.sum()
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != counts.shape or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise StoreError(
                f"weights {list(weights)} are invalid; expected {len(counts)} non-negative "
                f"numbers (one per store) with a positive sum"
            )
        empty = [self.paths[i] for i in np.flatnonzero((w > 0) & (counts == 0))]
        if empty:
            raise StoreError(
                f"stores {empty} have weight > 0 but no samples in the {self.split!r} split"
            )
        return w / w.sum()

    def _task_cdf(self, task_weights: Mapping[str, float]) -> np.ndarray:
        """(N,) cumulative sample probabilities: store shares as ``self.weights``, frames within a
        store in proportion to their task's weight."""
        tasks = self.task_of_samples()
        known = sorted(set(tasks.tolist()))
        bad = {k: v for k, v in task_weights.items() if k not in known}
        values = np.array(list(task_weights.values()), dtype=np.float64)
        if bad or np.any(values < 0) or not np.isfinite(values).all():
            raise StoreError(
                f"task_weights {dict(task_weights)} are invalid; expected non-negative weights "
                f"for tasks the {self.split!r} split holds: {known}"
            )
        w = np.array([float(task_weights.get(t, 1.0)) for t in tasks], dtype=np.float64)
        probs = np.zeros_like(w)
        for s in range(len(self.paths)):
            lo, hi = self.store_offsets[s], self.store_offsets[s + 1]
            total = w[lo:hi].sum()
            if self.weights[s] > 0 and total <= 0:
                raise StoreError(
                    f"task_weights {dict(task_weights)} leave store {self.paths[s]} nothing "
                    f"to sample, but its weight is {self.weights[s]:.3g}"
                )
            if total > 0:
                probs[lo:hi] = self.weights[s] * w[lo:hi] / total
        return np.cumsum(probs)


class MixtureSampler(Sampler[int]):
    """Sample indices: pick a store by its probability, then one of its frames uniformly (with
    replacement). Each ``iter`` is a new epoch with a new, deterministic draw (seed, epoch).
    """

    def __init__(
        self,
        store_offsets: np.ndarray,
        probs: np.ndarray,
        num_samples: int,
        seed: int = 0,
        sample_cdf: np.ndarray | None = None,
    ) -> None:
        self.offsets = np.asarray(store_offsets, dtype=np.int64)
        self.sample_cdf = sample_cdf  # (N,) per-sample cumulative probabilities (task weights)
        self.probs = np.asarray(probs, dtype=np.float64)
        self.num_samples = int(num_samples)
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        idx = draw_samples(rng, self.num_samples, self.offsets, self.probs, self.sample_cdf)
        return iter(idx.tolist())


def draw_samples(
    rng: np.random.Generator,
    n: int,
    offsets: np.ndarray,
    probs: np.ndarray,
    sample_cdf: np.ndarray | None = None,
) -> np.ndarray:
    """(n,) sample indices with replacement: a store by ``probs``, then a frame uniformly within
    it (``offsets`` (S+1,) bound the stores' samples); or, with ``sample_cdf`` (N,) cumulative
    per-sample probabilities, straight from those."""
    if sample_cdf is not None:
        u = rng.random(n) * sample_cdf[-1]
        return np.minimum(np.searchsorted(sample_cdf, u, side="right"), len(sample_cdf) - 1)
    store = rng.choice(len(probs), size=n, p=probs)
    lo, hi = offsets[store], offsets[store + 1]
    return lo + (rng.random(n) * (hi - lo)).astype(np.int64)


def collate(batch: list[Sample]) -> dict[str, Any]:
    """Stack array fields into torch tensors (B, ...); keep prompts and meta as lists of length B
    (prompts are tokenized later by the trainer's processor)."""
    if not batch:
        raise StoreError("collate got an empty batch")
    out: dict[str, Any] = {}
    for key, value in batch[0].items():
        if key in ("prompt", "meta"):
            out[key] = [b[key] for b in batch]
        elif isinstance(value, np.ndarray | np.generic):
            out[key] = torch.from_numpy(np.stack([b[key] for b in batch]))
        else:
            out[key] = [b[key] for b in batch]
    return out

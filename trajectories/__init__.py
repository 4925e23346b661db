"""Trajectories: the zarr episode store, recording, collection, training datasets and tools.

Typical use::

    from uio2_robot.policies.factory import make_policy
    from uio2_robot.trajectories import collect, WindowDataset, collate, compute_stats

    collect(["visual_manipulation"], ["L1"], episodes=100, workers=2, out="demos.zarr",
            make_policy_fn=make_policy)
    ds = WindowDataset(["demos.zarr"], n_obs_history=2, action_chunk=4, split="train")
    loader = DataLoader(ds, batch_size=32, sampler=ds.sampler(), collate_fn=collate, num_workers=2)

The on-disk format is described in docs/trajectory_format.md.
"""

from typing import TYPE_CHECKING, Any

# Light modules (numpy + zarr: what the robot PC's recorder needs) load eagerly; collection and
# recording (gymnasium, tqdm: the `sim` extra), the dataset (torch) and video (cv2) load on first
# use, so store readers, writer subprocesses and a robot PC without the sim extra start fast.
from uio2_robot.trajectories.collect import collect, episode_seed
from uio2_robot.trajectories.episode import Episode
from uio2_robot.trajectories.errors import StoreError
from uio2_robot.trajectories.recorder import Recorder
from uio2_robot.trajectories.schema import SCHEMA_VERSION, KeySpec, StoreSchema
from uio2_robot.trajectories.stats import NormStats
from uio2_robot.trajectories.store import EpisodeStore
from uio2_robot.trajectories.tools import compute_stats, merge_stores, store_info, validate_store

if TYPE_CHECKING:
    from uio2_robot.trajectories.dataset import MixtureSampler, WindowDataset, collate
    from uio2_robot.trajectories.record import record_episodes
    from uio2_robot.trajectories.rollout import EpisodeRun, record_episode, run_episode
    from uio2_robot.trajectories.video import episode_video

_LAZY = {
    "record_episodes": "record",
    "EpisodeRun": "rollout",
    "record_episode": "rollout",
    "run_episode": "rollout",
    "MixtureSampler": "dataset",
    "WindowDataset": "dataset",
    "collate": "dataset",
    "episode_video": "video",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SCHEMA_VERSION",
    "Episode",
    "EpisodeRun",
    "EpisodeStore",
    "KeySpec",
    "MixtureSampler",
    "NormStats",
    "Recorder",
    "StoreError",
    "StoreSchema",
    "WindowDataset",
    "collate",
    "collect",
    "compute_stats",
    "episode_seed",
    "episode_video",
    "merge_stores",
    "record_episode",
    "record_episodes",
    "run_episode",
    "store_info",
    "validate_store",
]

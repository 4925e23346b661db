"""Training examples for an official UIO2 model from the project's trajectory stores.

One stored primitive-mode episode gives one example in UIO2's VIMA form: the prompt (images as
``<image_history_k>`` history frames), the episode's first frame of ``camera`` as the image
input, and every action of the episode as the plan text target. The primitive kind (pick and
place, or push) is the task's tool's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from uio2_robot.contracts import PRIMITIVE_KINDS
from uio2_robot.errors import UsageError
from uio2_robot.model.official import OfficialConfig
from uio2_robot.official.finetune import plan_example
from uio2_robot.tokenize.official_batch import prompt_to_text
from uio2_robot.tokenize.official_vocab import OfficialTokenizer
from uio2_robot.trajectories.store import EpisodeStore


def kind_of_task(task: str) -> str:
    """pick_place or push: the primitive the task's tool makes."""
    from uio2_robot.envs.tasks import TASK_CLASSES

    if task not in TASK_CLASSES:
        raise UsageError(f"stored episode of unknown task {task!r}")
    return PRIMITIVE_KINDS[TASK_CLASSES[task].tool]


def examples_from_stores(
    stores: Sequence[str | Path],
    tokenizer: OfficialTokenizer,
    cfg: OfficialConfig,
    camera: str = "top",
    only_success: bool = True,
) -> list[dict[str, np.ndarray]]:
    """One official-layout example per (successful) primitive-mode episode of ``stores``."""
    examples = []
    for path in stores:
        store = EpisodeStore.open(path)
        try:
            for i in range(store.n_episodes):
                meta: dict[str, Any] = store.episode_meta(i)
                if only_success and not meta.get("success"):
                    continue
                if meta.get("action_mode") != "primitive":
                    raise UsageError(
                        f"{path} episode {i} is {meta.get('action_mode')!r} mode; UIO2's VIMA "
                        "plans need primitive-mode episodes"
                    )
                episode = store.episode(i, keys=[camera, "action"])
                text, images = prompt_to_text(episode.prompt, cfg.max_frames)
                examples.append(
                    plan_example(
                        tokenizer,
                        cfg,
                        text,
                        images,
                        episode.steps[camera][0],
                        episode.steps["action"],
                        kind_of_task(meta["task"]),
                    )  # fmt: skip
                )
        finally:
            store.close()
    if not examples:
        raise UsageError(f"no usable episodes in {list(map(str, stores))}")
    return examples

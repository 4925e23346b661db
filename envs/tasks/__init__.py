"""The VIMA-Bench task suite: one module per task, registered here by name.

Each task's levels come from VIMA's partitions (``levels.LEVEL_TASKS``), the one place they are
written down.
"""

from __future__ import annotations

from ..levels import task_levels
from .base import Episode, PromptImage, SetupContext, Task
from .imitation import FollowMotion, FollowOrder, Twist
from .memory import ManipulateOldNeighbor, PickInOrderThenRestore, RearrangeThenRestore
from .novel_concepts import NovelAdj, NovelAdjAndNoun, NovelNoun
from .rearrange import Rearrange
from .rotate import Rotate
from .same_shape import SameShape
from .same_texture import SameTexture
from .scene_understanding import SceneUnderstanding
from .sweep import SweepWithoutExceeding, SweepWithoutTouching
from .visual_manipulation import VisualManipulation

_CLASSES: tuple[type[Task], ...] = (  # VIMA's task order (paper and README)
    VisualManipulation,
    SceneUnderstanding,
    Rotate,
    Rearrange,
    RearrangeThenRestore,
    NovelAdj,
    NovelNoun,
    NovelAdjAndNoun,
    Twist,
    FollowMotion,
    FollowOrder,
    SweepWithoutExceeding,
    SweepWithoutTouching,
    SameTexture,
    SameShape,
    ManipulateOldNeighbor,
    PickInOrderThenRestore,
)
for _cls in _CLASSES:
    _cls.levels = task_levels(_cls.name)
    assert _cls.levels, f"{_cls.name} is in none of VIMA's partitions"
TASK_CLASSES: dict[str, type[Task]] = {cls.name: cls for cls in _CLASSES}

__all__ = ["TASK_CLASSES", "Episode", "PromptImage", "SetupContext", "Task"]

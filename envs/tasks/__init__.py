"""The VIMA-style task suite: one module per task, registered here by name."""

from __future__ import annotations

from .base import Episode, PromptImage, SetupContext, Task
from .rearrange import Rearrange
from .rotate import Rotate
from .same_shape import SameShape
from .same_texture import SameTexture
from .scene_understanding import SceneUnderstanding
from .sweep_without_exceeding import SweepWithoutExceeding
from .visual_manipulation import VisualManipulation

TASK_CLASSES: dict[str, type[Task]] = {
    cls.name: cls
    for cls in (
        VisualManipulation,
        SceneUnderstanding,
        Rotate,
        Rearrange,
        SameShape,
        SweepWithoutExceeding,
        SameTexture,
    )
}

__all__ = ["TASK_CLASSES", "Episode", "PromptImage", "SetupContext", "Task"]

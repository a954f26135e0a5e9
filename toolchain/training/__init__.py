"""Training machinery: checkpoints, optimizers and schedules, distributed set-up, tasks and the loop."""

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .loop import evaluate, load_bundle, train
from .tasks import TASKS, Task

__all__ = ["TASKS", "CheckpointError", "Task", "evaluate", "load_bundle", "load_checkpoint", "save_checkpoint", "train"]

"""How long a training loop trains and when it validates, counted in optimizer steps, and the learning-rate
schedule that follows from it: one home for task training (an epoch budget, or ``--max-steps`` and
``--eval-every``) and language modules (``--steps`` and ``--eval-every``), so both validate, checkpoint and
warm up by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import get_linear_schedule_with_warmup


@dataclass(frozen=True)
class StepBudget:
    total: int  # optimizer steps in all
    eval_every: int  # validate (and checkpoint) after every this many steps, and after the last
    warmup: int  # steps of linear warm-up, after which the learning rate falls linearly to 0 at ``total``

    @classmethod
    def of_steps(cls, steps: int, eval_every: int, warmup_ratio: float) -> StepBudget:
        return cls(steps, eval_every, int(warmup_ratio * steps))

    @classmethod
    def of_epochs(cls, epochs: int, steps_per_epoch: int, warmup_ratio: float, eval_every: int | None) -> StepBudget:
        """``epochs`` passes over the data, validated at each epoch's end unless ``eval_every`` says otherwise.
        The warm-up is multiplied out in the order runs made before step budgets did (ratio x steps per epoch x
        epochs), so that their schedules, and so their numbers, stay bit-identical."""
        return cls(steps_per_epoch * epochs, eval_every or steps_per_epoch,
                   int(warmup_ratio * steps_per_epoch * epochs))

    def next_evaluation(self, step: int) -> int:
        """After ``step`` optimizer steps, the step after which the loop validates next."""
        return min(self.total, (step // self.eval_every + 1) * self.eval_every)

    def due(self, step: int) -> bool:
        """Whether the loop validates after its ``step``-th optimizer step."""
        return self.next_evaluation(step - 1) == step

    def schedule(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return get_linear_schedule_with_warmup(optimizer, self.warmup, self.total)

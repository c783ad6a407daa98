"""Where the fit loop is inside an epoch: what a mid-epoch checkpoint saves (`train.checkpoint_every_steps`).

    pos = EpochPosition.start(task.epoch_batches(epoch), hygiene.columns)   # the epoch's batch order
    for batch in pos.remaining():                                           # after a resume: the rest
        ...; pos.add(loss, n, grad_norm, penalties)
    pos.total / pos.count                                                   # the epoch's train_loss

The batch order itself is saved (index arrays, as the shuffle stream drew them at the epoch's start),
so a resumed run takes the same batches without rewinding any random stream; every stream is saved
where it stands. The partial sums are the loop's own Python floats, so the epoch's row comes out
identical to the uninterrupted run's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EpochPosition:
    batches: list[np.ndarray]  # the epoch's batches (row indices), in order
    taken: int = 0  # batches whose step is done
    total: float = 0.0  # sum of loss * samples
    count: float = 0.0  # samples
    gnorm_sum: float = 0.0  # sum of the steps' gradient norms
    penalties: dict[str, float] = field(default_factory=dict)  # sum of penalty * samples, per column

    @classmethod
    def start(cls, batches: list, columns) -> EpochPosition:
        return cls(list(batches), penalties=dict.fromkeys(columns, 0.0))

    def remaining(self) -> list[np.ndarray]:
        return self.batches[self.taken:]

    @property
    def done(self) -> bool:
        return self.taken >= len(self.batches)

    def add(self, loss: float, n: int, gnorm: float, penalties: dict[str, float]) -> None:
        """One step's loss (the batch mean), samples, gradient norm and penalties."""
        self.taken += 1
        self.total, self.count, self.gnorm_sum = self.total + loss * n, self.count + n, self.gnorm_sum + gnorm
        for c, v in penalties.items():
            self.penalties[c] += v * n

    def state_dict(self) -> dict[str, Any]:
        """Flat: JSON values and arrays (numbers in arrays: exact, and NaN-safe)."""
        return {"taken": self.taken, "penalty_columns": list(self.penalties),
                "sums": np.array([self.total, self.count, self.gnorm_sum, *self.penalties.values()], dtype=np.float64),
                "order": np.concatenate(self.batches) if self.batches else np.zeros(0, dtype=np.int64),
                "sizes": np.asarray([len(b) for b in self.batches], dtype=np.int64)}

    @classmethod
    def from_state(cls, d: dict[str, Any]) -> EpochPosition:
        sizes = np.asarray(d["sizes"])
        batches = np.split(np.asarray(d["order"]), np.cumsum(sizes)[:-1]) if len(sizes) else []
        total, count, gnorm_sum, *pens = np.asarray(d["sums"]).tolist()
        return cls(batches, int(d["taken"]), total, count, gnorm_sum,
                   dict(zip(d["penalty_columns"], pens, strict=True)))

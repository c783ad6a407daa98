"""The step's hygiene between backward and the update, for every task: L1/L2 penalties, gradient
noise, clipping by value and by global norm. The finite check follows in the loop."""

from __future__ import annotations

import numpy as np

from rnnlab.engine import clip, penalties
from rnnlab.engine.grad_noise import GradientNoise


class StepHygiene:
    def __init__(self, train_cfg, reg_cfg, noise_rng: np.random.Generator):
        self.l1, self.l2 = reg_cfg.l1, reg_cfg.l2
        self.clip_value, self.clip_norm = train_cfg.clip_value, train_cfg.clip_norm
        self.noise = GradientNoise(reg_cfg.grad_noise_eta, reg_cfg.grad_noise_gamma, noise_rng)
        # the metrics columns of the penalties switched on
        self.columns = [c for c, coef in (("l1_loss", self.l1), ("l2_loss", self.l2)) if coef > 0]

    def __call__(self, params, grads) -> tuple[dict, float, dict[str, float]]:
        """(grads for the update, their global norm after clipping, the penalties' values)."""
        values: dict[str, float] = {}
        if self.columns:
            values, pgrads = penalties.penalties(params, l1=self.l1, l2=self.l2)
            grads = penalties.add_grads(grads, pgrads)
        if self.noise.enabled:  # before clipping, so the clip also bounds the early, large noise
            grads = self.noise(grads)
        if self.clip_value is not None:
            grads = clip.clip_by_value(grads, self.clip_value)
        if self.clip_norm is not None:
            grads, gnorm = clip.clip_by_global_norm(grads, self.clip_norm)
        else:
            gnorm = clip.global_norm(grads)
        return grads, gnorm, {c: values[c] for c in self.columns}

    def state_dict(self) -> dict:
        return {"noise_step": self.noise.step}

    def load_state_dict(self, d: dict) -> None:
        self.noise.step = int(d.get("noise_step", 0))

"""Annealed Gaussian gradient noise (Neelakantan et al. 2015, "Adding Gradient Noise
Improves Learning for Very Deep Networks").

At step t (0, 1, 2, ...) every gradient entry gets N(0, sigma_t^2) added, with
sigma_t^2 = eta / (1 + t)^gamma (gamma = 0.55 in the paper). The noise comes from a
Generator of its own, so switching it on leaves every other random stream unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def noise_variance(step: int, eta: float, gamma: float = 0.55) -> float:
    """sigma_t^2 = eta / (1 + t)^gamma."""
    if step < 0:
        raise ValueError(f"grad_noise step must be >= 0 (got {step})")
    return float(eta) / (1.0 + step) ** float(gamma)


class GradientNoise:
    """Adds the annealed noise to a dict of gradients; `step` counts the calls."""

    def __init__(self, eta: float, gamma: float = 0.55, rng: np.random.Generator | None = None):
        if not eta >= 0:
            raise ValueError(f"reg.grad_noise_eta must be >= 0 (got {eta})")
        if not gamma >= 0:
            raise ValueError(f"reg.grad_noise_gamma must be >= 0 (got {gamma})")
        self.eta, self.gamma = float(eta), float(gamma)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.step = 0

    @property
    def enabled(self) -> bool:
        return self.eta > 0

    def variance(self) -> float:
        """sigma^2 of the next call."""
        return noise_variance(self.step, self.eta, self.gamma)

    def __call__(self, grads: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """New gradient arrays g + N(0, sigma_t^2) (in g's dtype); with eta = 0 the same arrays."""
        if not self.enabled:
            self.step += 1
            return dict(grads)
        sigma = float(np.sqrt(self.variance()))
        out = {}
        for k, g in grads.items():  # dict order is fixed, so the draws are reproducible
            noise = self.rng.standard_normal(g.shape, dtype=g.dtype if g.dtype in (np.float32, np.float64)
                                             else np.float64)
            out[k] = g + (sigma * noise).astype(g.dtype, copy=False)
        self.step += 1
        return out

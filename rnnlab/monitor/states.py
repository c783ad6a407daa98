"""Hidden-state and gate analysis (placeholder interface; being implemented)."""

from __future__ import annotations


def analyse_states(cfg, spec, params, probe, run_dir) -> dict:
    return {}

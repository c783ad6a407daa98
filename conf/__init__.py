"""Hydra config tree, installed as the package rnnlab.conf (see pyproject.toml)."""

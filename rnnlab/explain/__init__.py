"""Explanations of a trained run's predictions (`rnnlab explain`): attribution methods (methods.py) on the
model as a differentiable function of its inputs (function.py), their sanity checks and the synthetic tasks'
known answers (sanity.py), the orchestration (run.py) and the explain/ folder (files.py)."""

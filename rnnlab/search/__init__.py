"""`rnnlab search`: hyper-parameter search with Optuna (space, trials, study, outputs)."""


class SearchError(ValueError):
    """Bad search input (space, metric, options, storage): reported as one line and exit code 2."""

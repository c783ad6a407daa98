"""rnnlab's multirun sweeper as a Hydra plugin: Hydra instantiates sweepers only from the hydra_plugins
namespace. The code and its documentation are in rnnlab/commands/sweeper.py."""

from rnnlab.commands.sweeper import GridSweeper


class RnnlabSweeper(GridSweeper):
    """`hydra/sweeper=rnnlab`: Hydra's grid, each job decided first (start, or skip / resume / start)."""

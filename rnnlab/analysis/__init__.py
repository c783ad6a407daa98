"""Numbers about runs, shared by the training loop's reports, `report` and `compare`: the test
metrics (regression and classification) and the dashboard of a run's vital signs. Pure functions
of arrays and metrics rows; nothing here writes files or draws."""

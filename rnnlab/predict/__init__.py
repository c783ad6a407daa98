"""A trained run put to use: loaded back (`run.load_run`), applied to new inputs read as it was trained
(`rnnlab.data.inputs`), on the engine or on an exported graph. Above `rnnlab.export` so a prediction can
run through an export; the export formats take the loaded run without importing this package."""

"""Exports of a trained run (`rnnlab export`): one module per format behind `formats.FORMATS`.

A format module has ``NAME``, ``SUMMARY`` (one line for --help) and
``write(run, folder, options) -> Written``; it writes its files into `folder` (a temporary folder the
caller renames into place once every format has written, so a failed export leaves nothing) and
raises `ExportError` (one line: what cannot be exported and why) for what it cannot express.
"""

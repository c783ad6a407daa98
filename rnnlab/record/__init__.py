"""What a run folder holds, and how it is read back: the typed summary, the metrics log and the
checkpoint layout. Writing a run folder is the recorder's job (`rnnlab.train.recorder`); this
package only knows the files' shapes, so that `report`, `compare`, `cv` and `search` read them
through one definition.
"""

"""The multi-view network, its checkpoints and training, and (in :mod:`.data`) the data it learns from."""

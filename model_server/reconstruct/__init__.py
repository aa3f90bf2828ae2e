"""Sketch to mesh: a backend predicts the 14 views' maps, fusion turns them into a watertight mesh.

:mod:`.pipeline` is the entry point the service edge and the evaluation call.
"""

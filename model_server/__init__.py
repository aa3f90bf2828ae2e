"""Sketch2Mesh model server: turns front/side(/top) sketches into a watertight mesh.

The sub-packages follow the data flow: geometry (shared facts) -> sketch (strokes and
PNGs to ink and silhouettes) -> reconstruct (backends predict 14-view maps, fusion makes
the mesh) -> fit (Fit to strokes); learning and evaluation work offline beside them, and
service/ and __main__.py are the service edge. ARCHITECTURE.md has the import rules.
Importing this package is cheap; heavy modules (open3d, torch) load only when the
modules that need them are imported.
"""

"""Sketch2Mesh model server: turns front/side(/top) sketches into a watertight mesh.

The numeric core flows one way: views -> rasterize -> silhouette -> hull (via render)
-> fusion -> pipeline. Importing this package is cheap; heavy modules (open3d, torch)
load only when the submodules that need them are imported.
"""

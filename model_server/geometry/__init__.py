"""Geometry shared by every stage: the views and their pixel mapping, the 14-view maps,
the canonical frame, mesh topology and normals, surface nets, ray casting and mesh files.

The bottom layer: it imports nothing else of the server.
"""

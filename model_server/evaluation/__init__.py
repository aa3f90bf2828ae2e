"""Measuring reconstructions: mesh metrics and the harness that scores a dataset or a mesh folder."""

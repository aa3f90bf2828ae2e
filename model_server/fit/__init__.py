"""Fit to strokes: a differentiable silhouette renderer and the Large Steps optimisation it drives."""

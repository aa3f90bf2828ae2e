"""Training data: procedural shapes and users' meshes, rendered to 14-view ground truth and sketched."""

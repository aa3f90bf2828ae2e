"""Reading sketches: strokes and PNG drawings become ink images, and ink becomes filled silhouettes."""

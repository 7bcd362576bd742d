"""Lesson: learning on pixels: the pixel-similarity baseline that learns nothing (`baseline`), then a linear
model and a small net trained by SGD on the same 3s and 7s (`learn`)."""

// Placeholder; replaced by the RosetFUSE implementation.

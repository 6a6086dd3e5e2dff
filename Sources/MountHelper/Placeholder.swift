// Placeholder; replaced by the MountHelper implementation.

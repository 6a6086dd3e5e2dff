print("mount.roset: not yet implemented")

print("roset-server: not yet implemented")

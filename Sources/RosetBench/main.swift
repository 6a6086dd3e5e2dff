print("roset-bench: not yet implemented")

// Placeholder; replaced by the server implementation.

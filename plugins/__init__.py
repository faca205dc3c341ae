"""Local stand-ins for plugin images, run by the process job backend."""

"""Command-line tools (seafusion-fuse, seafusion-train, seafusion-eval, ...)."""

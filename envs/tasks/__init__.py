"""One file per task: reset distribution, reward and success."""

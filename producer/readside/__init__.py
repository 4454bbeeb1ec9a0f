"""The read side: a video's status for its owner and the stable links caches reuse."""

"""Media code: container sniffing, in-process probe, keyframe decoding, thumbnails, storyboards."""

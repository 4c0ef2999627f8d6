"""The consent store: which citizen allowed which portal which data (and what they refused)."""

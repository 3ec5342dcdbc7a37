"""The driver's side of every call (also inside workers, which submit tasks too): the
client that owns objects and submits tasks and actor calls, and local mode."""

"""Objects in shared memory: the files, their layout and accounting, and the client-mode
stand-in that stores through the head."""

"""Decision logic as plain classes: no sockets, threads or clocks (time is passed in)."""

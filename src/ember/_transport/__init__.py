"""Bytes in and out: sockets, framing and the reactor loop. No decisions live here."""

"""Wire-level data: ids, messages and the object file format. Pure data, no IO."""

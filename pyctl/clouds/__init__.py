"""Cloud I/O: one subpackage per cloud; nothing else builds SDK clients."""

"""dimse layer."""

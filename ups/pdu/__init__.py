"""pdu layer."""

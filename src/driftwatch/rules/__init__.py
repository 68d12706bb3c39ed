"""Rule layer."""

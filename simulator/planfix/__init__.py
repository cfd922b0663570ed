"""planfix."""

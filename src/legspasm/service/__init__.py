"""CDS Hooks service."""

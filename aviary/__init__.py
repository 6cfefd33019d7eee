"""Aviary's runtime domain package, shared by the Lambda handlers and the EC2 hosts."""

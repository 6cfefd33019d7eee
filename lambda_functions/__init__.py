"""Lambda handlers: thin adapters from AWS events to the aviary domain package."""

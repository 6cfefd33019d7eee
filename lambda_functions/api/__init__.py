"""API Gateway HTTP API handlers, one module per route group."""

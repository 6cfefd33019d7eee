"""The whole app on one machine: a moto server as AWS, and a runtime doing what AWS would run.

moto runs no Lambda code (it needs Docker for that), so this package stands in for API Gateway
and its JWT authorizer, the event source mappings, Route 53 failover and cross-region
replication, calling the project's real handlers and host code. Local emulation only.
"""

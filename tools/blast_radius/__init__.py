"""Static failure-isolation report over a synthesized cloud assembly: `python -m tools.blast_radius`.

It reads the CloudFormation templates (what would really be deployed), builds a model of regions,
AZs, host fleets and stateful resources, and evaluates host, AZ, region and dependency failures
against the principles of docs/architecture.md.
"""

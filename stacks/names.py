"""Stack names, kept free of CDK imports so tools that only look stacks up stay light."""


def stack_name(kind: str, region: str) -> str:
    """e.g. Aviary-Data-us-east-1; kinds are Data, Service, MediaReplication and MediaDelivery."""
    return f"Aviary-{kind}-{region}"

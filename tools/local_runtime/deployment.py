"""What the local deploy put into one region of moto: functions, their settings and event sources.

The local runtime reads these back rather than restating them, so it runs each handler with
exactly the environment, timeout and mapping settings the synthesized template gave it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from aviary.schema import IDEMPOTENCY, SOCIAL_GRAPH, TWEETS, TableSchema
from aviary.timeline_settings import TimelineSettings
from stacks.names import stack_name
from tools.local_aws.event_sources import MappingSettings

# Each stream consumer of a region: the name of its checkpoint -> its handler and the table it reads.
STREAM_CONSUMERS: dict[str, tuple[str, TableSchema]] = {
    "fanout": ("lambda_functions.fanout.handler.handler", TWEETS),
    "graph-stream": ("lambda_functions.graph_stream.handler.handler", SOCIAL_GRAPH),
    "follow-stream": ("lambda_functions.follow_stream.handler.handler", SOCIAL_GRAPH),
    "idempotency-stream": ("lambda_functions.idempotency_stream.handler.handler", IDEMPOTENCY),
}

# One process runs every function of a region, so it runs with the union of their variables: each
# function is given only what its settings class names, and no two give one variable different
# values; only Powertools' service name differs between them.
PER_FUNCTION_VARIABLES = frozenset({"POWERTOOLS_SERVICE_NAME"})


class DeploymentNotFound(RuntimeError):
    """The region has no deployed service stack (run `make deploy-local` first)."""


@dataclass(frozen=True)
class DeployedFunction:
    configuration: dict[str, Any]  # GetFunctionConfiguration's answer
    mappings: tuple[dict[str, Any], ...]  # its event source mappings (ListEventSourceMappings)

    @property
    def handler_path(self) -> str:
        return self.configuration["Handler"]

    @property
    def environment(self) -> dict[str, str]:
        return dict((self.configuration.get("Environment") or {}).get("Variables") or {})

    def load_handler(self) -> Any:
        """The handler function itself, imported from this project as the asset bundles it."""
        module, _, attribute = self.handler_path.rpartition(".")
        return getattr(importlib.import_module(module), attribute)

    def mapping(self) -> tuple[str, MappingSettings]:
        """(event source ARN, settings) of the function's one event source mapping."""
        [mapping] = self.mappings
        return mapping["EventSourceArn"], MappingSettings.of(mapping)


@dataclass(frozen=True)
class RegionDeployment:
    region: str
    functions: dict[str, DeployedFunction]  # by handler path, e.g. "lambda_functions.api.tweets.handler"

    def function(self, handler_path: str) -> DeployedFunction:
        try:
            return self.functions[handler_path]
        except KeyError:
            raise DeploymentNotFound(
                f"No function with handler {handler_path} is deployed in {self.region}; "
                "run make deploy-local."
            ) from None

    def timeline_settings(self) -> TimelineSettings:
        """The tables and limits the region's timeline writers were deployed with."""
        return TimelineSettings.from_environment(self.shared_environment())

    def shared_environment(self) -> dict[str, str]:
        """The variables every function of the region shares; a conflict is a deploy bug, so it stops us."""
        merged: dict[str, str] = {}
        for function in self.functions.values():
            for name, value in function.environment.items():
                if name in PER_FUNCTION_VARIABLES:
                    continue
                if merged.setdefault(name, value) != value:
                    raise DeploymentNotFound(
                        f"Functions in {self.region} disagree on {name} ({merged[name]!r} vs {value!r}); "
                        "one process cannot run them both."
                    )
        return merged


def read_deployment(region: str, lambda_client: Any) -> RegionDeployment:
    prefix = stack_name("Service", region) + "-"
    # moto's FunctionName filter does not match ARNs: list them all and match here.
    mappings = [
        mapping
        for page in lambda_client.get_paginator("list_event_source_mappings").paginate()
        for mapping in page["EventSourceMappings"]
    ]
    functions: dict[str, DeployedFunction] = {}
    for page in lambda_client.get_paginator("list_functions").paginate():
        for configuration in page["Functions"]:
            if not configuration["FunctionName"].startswith(prefix):
                continue
            own = tuple(m for m in mappings if m["FunctionArn"] == configuration["FunctionArn"])
            functions[configuration["Handler"]] = DeployedFunction(configuration, own)
    if not functions:
        raise DeploymentNotFound(
            f"Nothing of {prefix.rstrip('-')} is deployed in moto; run make deploy-local."
        )
    return RegionDeployment(region, functions)

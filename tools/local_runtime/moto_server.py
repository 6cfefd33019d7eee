"""The moto server the local stage deploys into, with its event source mappings left as records.

moto tries to run a mapping's function the moment a stream record or queue message arrives;
without Docker that "invocation" fails, and moto still counts the batch as delivered and drops
it. So here a mapping is created, listed and described as usual but never attached to its
table or queue: the local runtime reads its settings and does the delivery (event_sources.py).

    python -m tools.local_runtime.moto_server -H 127.0.0.1 -p 5000
"""

from __future__ import annotations

import sys
from typing import Any

from moto import server
from moto.awslambda.models import LambdaBackend
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import sqs_backends

_create_event_source_mapping = LambdaBackend.create_event_source_mapping


def _create_detached(self: LambdaBackend, spec: dict[str, Any]) -> Any:
    mapping = _create_event_source_mapping(self, spec)
    for queue in sqs_backends[self.account_id][self.region_name].queues.values():
        queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
    for table in dynamodb_backends[self.account_id][self.region_name].tables.values():
        table.lambda_event_source_mappings.pop(mapping.function_arn, None)
    return mapping


def main(argv: list[str] | None = None) -> None:
    LambdaBackend.create_event_source_mapping = _create_detached  # type: ignore[method-assign]
    server.main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()

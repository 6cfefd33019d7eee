"""Every change Aviary makes to moto's behaviour, in one place, each with the reason it is needed.

None changes what moto answers to a call the code under test makes: one keeps moto from dropping
records it cannot deliver without Docker, one keeps its logs to what is news, and one makes large
in-process runs quick enough to be drills.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# -- event source mappings, left as records ---------------------------------------------------------


def detach_event_source_mappings() -> None:
    """From now on, an event source mapping is created, listed and described as usual but never
    attached to its table or queue.

    moto tries to run a mapping's function the moment a stream record or queue message arrives;
    without Docker that "invocation" fails, and moto still counts the batch as delivered and drops
    it. Detached, the records stay where they are, and the local runtime reads the mapping's settings
    and does the delivery itself (event_sources.py). For the moto server, which lives for one process.
    """
    from moto.awslambda.models import LambdaBackend
    from moto.dynamodb.models import dynamodb_backends
    from moto.sqs.models import sqs_backends

    create_event_source_mapping = LambdaBackend.create_event_source_mapping

    def create_detached(self: LambdaBackend, spec: dict[str, Any]) -> Any:
        mapping = create_event_source_mapping(self, spec)
        for queue in sqs_backends[self.account_id][self.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        for table in dynamodb_backends[self.account_id][self.region_name].tables.values():
            table.lambda_event_source_mappings.pop(mapping.function_arn, None)
        return mapping

    LambdaBackend.create_event_source_mapping = create_detached  # type: ignore[method-assign]


# -- notices about limits that are known ----------------------------------------------------------------

# Notices moto logs again and again for limits the drills know and report once: resource types its
# CloudFormation skips (deploy.Deployment.skipped_types), and Lambda invocations it cannot run without
# Docker.
_KNOWN_LIMIT_NOTICES = {
    "moto": "No Moto CloudFormation support",
    "moto.awslambda.models": "error running docker",
}


class _DropNotice(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


@contextmanager
def quiet_about_known_limits() -> Iterator[None]:
    """moto's logs, without the notices it repeats for every resource or record it cannot handle."""
    installed = [(logging.getLogger(name), _DropNotice(text)) for name, text in _KNOWN_LIMIT_NOTICES.items()]
    for logger, notice in installed:
        logger.addFilter(notice)
    try:
        yield
    finally:
        for logger, notice in installed:
            logger.removeFilter(notice)


# -- quicker DynamoDB transactions and queries -------------------------------------------------------


@contextmanager
def quicker_moto() -> Iterator[None]:
    """Two shortcuts through moto that change how long it takes, not what it answers.

    moto 5.2.5 deep-copies every table a transaction names (items, stream records and all) so that it
    can roll back, and sorts a whole table on every Query before picking the queried partition. With
    thousands of tweets each post and each fan-out would take tenths of a second. Here a transaction
    saves only what its rollback needs (the items it names, the stream as it was), and a Query of a
    table's own key reads just that partition. tests/unit/tools/local_aws/test_moto_patches.py
    compares both with moto.
    """
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    real_copy = models.copy
    real_transact = models.DynamoDBBackend.transact_write_items
    real_query = Table.query
    real_all_items = Table.all_items
    query_signature = inspect.signature(real_query)
    in_flight: list[list[dict[str, Any]]] = []
    partitions: list[tuple[Table, DynamoType]] = []

    def snapshot(table: Table, transact_items: list[dict[str, Any]]) -> Table:
        saved = copy.copy(table)
        if table.range_key_attr is not None:
            saved.items = defaultdict(dict, {hash_: dict(inner) for hash_, inner in table.items.items()})
        else:
            saved.items = defaultdict(dict, table.items)
        for entry in transact_items:
            for kind, operation in entry.items():
                if not isinstance(operation, dict) or operation.get("TableName") != table.name:
                    continue
                key = operation.get("Item") if kind == "Put" else operation.get("Key")
                try:
                    hash_ = DynamoType(key[table.hash_key_attr])
                    range_ = None if table.range_key_attr is None else DynamoType(key[table.range_key_attr])
                except (KeyError, TypeError):
                    continue  # moto refuses such an item itself
                # An update changes its item in place: the saved state needs a copy of its own.
                if range_ is None:
                    if hash_ in saved.items:
                        saved.items[hash_] = real_copy.deepcopy(saved.items[hash_])
                elif range_ in saved.items.get(hash_, {}):
                    saved.items[hash_][range_] = real_copy.deepcopy(saved.items[hash_][range_])
        if table.stream_shard is not None:
            shard = copy.copy(table.stream_shard)
            shard.items = list(table.stream_shard.items)  # records are appended, never changed
            shard.table = saved
            saved.stream_shard = shard
        return saved

    class Copy:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_copy, name)

        def deepcopy(self, value: Any, memo: Any = None) -> Any:
            if in_flight and isinstance(value, Table):
                return snapshot(value, in_flight[-1])
            return real_copy.deepcopy(value, memo)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        in_flight.append(transact_items)
        try:
            return real_transact(self, transact_items)
        finally:
            in_flight.pop()

    def query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = query_signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") or arguments.get("hash_key") is None:
            return real_query(self, *args, **kwargs)
        partitions.append((self, arguments["hash_key"]))
        try:
            return real_query(self, *args, **kwargs)
        finally:
            partitions.pop()

    def all_items(self: Table) -> list[Any]:
        if not partitions or partitions[-1][0] is not self:
            return real_all_items(self)
        # The partition's items in the order the whole-table listing has them; query keeps no others.
        partition = self.items.get(partitions[-1][1])
        if partition is None:
            return []
        if self.range_key_attr is None:
            return [partition]
        return sorted(partition.values(), key=lambda item: item.range_key)

    models.copy = Copy()
    models.DynamoDBBackend.transact_write_items = transact_write_items
    Table.query = query
    Table.all_items = all_items
    try:
        yield
    finally:
        models.copy = real_copy
        models.DynamoDBBackend.transact_write_items = real_transact
        Table.query = real_query
        Table.all_items = real_all_items

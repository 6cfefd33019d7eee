"""A stand-in for the context object Lambda passes a handler: what Powertools' inject_lambda_context
reads from it (name, memory, ARN, request ID)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.aws_fakes import DEFAULT_REGION as REGION

ACCOUNT = "123456789012"


def lambda_context(function_name: str, memory_limit_in_mb: int = 256) -> SimpleNamespace:
    return SimpleNamespace(
        function_name=function_name,
        function_version="$LATEST",
        memory_limit_in_mb=memory_limit_in_mb,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
        aws_request_id="c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name="2026/11/21/[$LATEST]abcdef",
    )

"""Host drill: a timeline host loses its cache disk, then DynamoDB becomes unreachable.

The unit of failure is a single host: its cache lives on instance-store disks that vanish with it,
so a replacement must serve the same timelines after re-warming from DynamoDB alone. And while
DynamoDB cannot be reached, a warm host still answers from its cache (stale) while a cold one
answers 503 with Retry-After (hosts/timeline_service/service.py), never an empty or invented page.

The drill deploys the region's local-stage stacks into in-process moto (tools/local_aws/deploy.py)
and runs one deployed host in this process (timeline_hosts.py).
"""

from __future__ import annotations

import time
from pathlib import Path

from stacks.config import DeploymentConfig
from tools.drills.result import DrillResult
from tools.drills.served_pages import compare_pages, pages_unlike_writes, timelines_matching
from tools.drills.timeline_hosts import (
    PAST_FRESH_WINDOW_SECONDS,
    FakeClock,
    TimelineHost,
    counting_failure_warnings,
    deploy_region,
    first_host,
    host_settings,
    seed_timelines,
    work_directory,
)
from tools.local_aws.in_process import aws_client, in_process_moto


def run(
    cdk_out: Path,
    config: DeploymentConfig,
    *,
    region: str | None = None,
    users: int = 6,
    posts_per_user: int = 2,
    page_limit: int = 5,
    work_dir: Path | None = None,
) -> DrillResult:
    """Kill one warm host's cache, re-warm a replacement, then cut DynamoDB off from a warm and a cold host.

    `cdk_out` is a synthesized cloud assembly of the local stage and `config` the deployment config
    it was synthesized from. survived/lost count the pages served by the re-warmed replacement (twice:
    re-warming, then warm) and by it during the outage, against the pages served before the cache was
    lost. Also lost: any page a cold host serves during the outage (it has no copy to serve), and the
    pages of any timeline that did not hold exactly the tweets written in the first place.
    """
    started = time.monotonic()
    region = region or config.primary_region
    with in_process_moto(config.account), work_directory(work_dir) as work:
        deployment = deploy_region(cdk_out, config, region)
        ec2 = aws_client("ec2", region)
        instance_id = first_host(ec2, deployment)
        settings = host_settings(ec2, instance_id)
        seeded = seed_timelines(settings, users=users, posts_per_user=posts_per_user)
        handles = sorted(seeded.expected)
        clock = FakeClock()
        root = work / instance_id

        host = TimelineHost(instance_id, root, settings, clock)
        try:
            cold_start = host.sweep(handles, page_limit)
            host.wait_until_cached(cold_start.keys)
            warm = host.sweep(handles, page_limit)  # inside the fresh window: every page from the cache
            pages_cached = host.cached(warm.keys)
        finally:
            host.close()
        cache_files = host.lose_disks()

        replacement = TimelineHost(f"{instance_id} replacement", root, settings, clock)
        try:
            rewarm = replacement.sweep(handles, page_limit)
            replacement.wait_until_cached(rewarm.keys)
            rewarmed = replacement.sweep(handles, page_limit)
            clock.now += PAST_FRESH_WINDOW_SECONDS
            replacement.client.reachable = False
            with counting_failure_warnings() as warm_warnings:
                outage_warm = replacement.sweep(handles, page_limit)
        finally:
            replacement.close()

        # The warm host dies in the outage too: its replacement starts with an empty cache.
        replacement.lose_disks()
        cold = TimelineHost(f"{instance_id} cold replacement", root, settings, clock)
        cold.client.reachable = False
        try:
            with counting_failure_warnings() as cold_warnings:
                outage_cold = cold.sweep(handles, page_limit)
        finally:
            cold.close()

    tally = (
        compare_pages(warm.pages, rewarm.pages)
        + compare_pages(warm.pages, rewarmed.pages)
        + compare_pages(warm.pages, outage_warm.pages)
    )
    return DrillResult(
        scenario=f"host {instance_id} lost its cache disk",
        injected=f"deleted {cache_files} cache files, then DynamoDB unreachable for a warm and a cold host",
        survived=tally.survived,
        # A cold host has no copy to serve: any page it served during the outage came from nowhere.
        lost=tally.lost + outage_cold.served + pages_unlike_writes(seeded.expected, warm.pages),
        duplicated=tally.duplicated,
        seconds=time.monotonic() - started,
        details={
            "region": region,
            "users": len(handles),
            "pages": len(warm.keys),
            "timelines_matching_writes": timelines_matching(seeded.expected, warm.pages),
            "cold_start_misses": cold_start.misses,
            "warm_misses_before_loss": warm.misses,
            "pages_cached_before_loss": pages_cached,
            "cache_files_deleted": cache_files,
            "rewarm_misses": rewarm.misses,
            "misses_after_rewarm": rewarmed.misses,
            "stale_pages_during_outage": outage_warm.stale,
            "warm_503s_during_outage": outage_warm.unavailable,
            "cold_503s_during_outage": outage_cold.unavailable,
            "cold_pages_served_during_outage": outage_cold.served,
            "cold_retry_after_seconds": ",".join(map(str, sorted(outage_cold.retry_after))),
            "failures_logged_during_outage": warm_warnings.count + cold_warnings.count,
            "deploy_seconds": round(deployment.seconds, 2),
        },
    )

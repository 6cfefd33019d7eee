"""The host benchmark's plumbing: /proc parsing, the figures and checks it prints, and one short real
run of each server and of the driver. Nothing here asserts on speed: `make bench-host` prints that."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from tools import bench_host
from tools.bench_host import (
    CLOCK_TICKS,
    Measurement,
    Workdir,
    check_answers,
    driver_check,
    machine_busy_seconds,
    measure,
    measurement_from,
    median_measurement,
    prepare_workdir,
    process_cpu_seconds,
    report,
    start_server,
    stop_processes,
    targets,
)

# A process whose command name holds a space and a parenthesis; utime 250 and stime 50 ticks.
STAT = "4242 (node (x) y) S 1 2 3 0 -1 4194304 102 0 0 0 250 50 0 0 20 0 1 0 918326 3133440 410 0 0 0"
PROC_STAT = "cpu  1000 10 200 5000 40 0 30 5 0 0\ncpu0 500 5 100 2500 20 0 15 2 0 0\n"


def figures(rps: float, server: float, driver: float, other: float = 0.0, p99: float = 2.0) -> Measurement:
    return Measurement(rps, 1.0, p99, server, driver, other)


def test_a_processs_cpu_is_its_user_and_system_ticks_whatever_its_name():
    assert process_cpu_seconds(STAT) == pytest.approx(300 / CLOCK_TICKS)


def test_the_machines_busy_time_leaves_out_idle_and_iowait():
    assert machine_busy_seconds(PROC_STAT) == pytest.approx((1000 + 10 + 200 + 30 + 5) / CLOCK_TICKS)
    with pytest.raises(ValueError, match="cpu"):
        machine_busy_seconds("intr 1 2 3\n")


def test_a_run_becomes_rates_and_core_shares_with_the_rest_of_the_machine_as_other():
    result = {"requests": 50_000, "seconds": 5.0, "non_2xx": 0, "errors": 0, "timeouts": 0}
    result |= {"p50_ms": 1.2, "p99_ms": 2.5, "cpu_seconds": 3.0}
    measured = measurement_from(result, server_cpu=4.5, machine_cpu=8.0, seconds=5.0)
    assert measured == Measurement(10_000, 1.2, 2.5, server_cores=0.9, driver_cores=0.6, other_cores=0.1)


@pytest.mark.parametrize("failure", ["non_2xx", "errors", "timeouts"])
def test_a_run_with_any_failed_answer_is_refused(failure):
    result = {"requests": 10, "seconds": 1.0, "non_2xx": 0, "errors": 0, "timeouts": 0}
    result |= {"p50_ms": 1.0, "p99_ms": 2.0, "cpu_seconds": 0.1, failure: 3}
    with pytest.raises(SystemExit, match=failure):
        measurement_from(result, server_cpu=1.0, machine_cpu=1.0, seconds=1.0)


def test_medians_are_taken_figure_by_figure():
    rounds = [figures(10, 0.9, 0.5), figures(30, 0.95, 0.7), figures(20, 1.0, 0.6)]
    assert median_measurement(rounds) == figures(20, 0.95, 0.6)


@pytest.mark.parametrize(
    ("ceiling", "workers", "verdict"),
    [
        (figures(20_000, 0.97, 0.55), 1, "check passed: the server saturated"),
        (figures(20_000, 0.60, 0.95), 1, "check FAILED: the driver saturated"),
        (figures(20_000, 1.25, 0.70), 2, "check passed, machine-bound"),
        (figures(20_000, 0.97, 0.55, other=0.6), 1, "check FAILED: other processes"),
        (figures(20_000, 0.50, 0.40), 1, "check FAILED: neither"),
    ],
)
def test_the_driver_check_names_what_set_the_pace(ceiling, workers, verdict):
    assert driver_check(ceiling, workers, cpus=2).startswith(verdict)


def test_the_report_gives_each_route_as_a_ratio_of_the_ceiling():
    medians = {"ceiling": figures(20_000, 0.97, 0.5, p99=2.0), "hit": figures(18_500, 0.97, 0.5, p99=2.4)}
    lines = report(1, 2, ["ceiling", "hit"], medians, rounds=3)
    assert lines[0] == "median of 3 rounds, 1 worker(s) per server:"
    ratio = "0.93 of the ceiling's requests/s"
    assert any(line.strip().startswith("hit") and ratio in line for line in lines)
    assert any("p99 +0.40 ms" in line for line in lines)
    assert lines[-1].strip().startswith("check passed")


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory(prefix="aviary-bench-test-") as directory:
        workdir = Workdir(Path(directory))
        yield workdir, *prepare_workdir(workdir)


def test_every_scenario_is_answered_with_its_page_by_every_worker(workdir):
    work, token, cursor = workdir
    scenarios = targets(token, cursor)
    assert [json.loads(t.expected_body)["items"][0]["id"] for t in scenarios] == [
        "01JD0000000000000000000040",
        "01JD0000000000000000000040",
        "01JD0000000000000000000020",
        "01JD0000000000000000000040",
    ]
    for kind in bench_host.SERVER_KINDS:
        server = start_server(kind, work, workers=2)
        try:
            assert len(set(server.pids)) == 2
            for target in scenarios:
                if target.server == kind:
                    check_answers(server, target, attempts=4)  # raises SystemExit on a wrong answer
        finally:
            stop_processes(server.workers)
        assert all(worker.returncode is not None for worker in server.workers)


def test_a_short_run_of_the_driver_gives_every_figure(workdir):
    work, token, cursor = workdir
    hit = targets(token, cursor)[1]
    server = start_server("timeline", work, workers=1)
    try:
        measured = measure(server, hit, connections=4, warmup=0.2, seconds=0.5)
    finally:
        stop_processes(server.workers)
    assert measured.requests_per_second > 0
    assert 0 < measured.p50_ms <= measured.p99_ms
    assert measured.server_cores > 0
    assert measured.driver_cores > 0
    assert measured.other_cores >= 0

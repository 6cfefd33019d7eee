"""Background processes: a process that fails to start is reported with what this start wrote, not
with what an earlier run left in the same log."""

from __future__ import annotations

import pytest

from tools.local_runtime.processes import LocalProcesses, StartFailed, log_since

NOTHING_LISTENS = "http://127.0.0.1:9/"  # the discard port: nothing answers HTTP there


def test_a_process_that_exits_while_starting_shows_only_this_starts_output(tmp_path):
    processes = LocalProcesses(tmp_path)
    processes.log_dir.mkdir(parents=True)
    earlier = "an earlier run's line that has nothing to do with this failure"
    processes.log_file("region-x").write_text(f"{earlier}\n" * 50)

    processes.start("region-x", "tools.no_such_module_here", environment={})
    with pytest.raises(StartFailed) as failed:
        processes.wait_until("region-x", NOTHING_LISTENS, timeout_seconds=30)

    message = str(failed.value)
    assert message.startswith("region-x exited while starting. It wrote to ")
    assert str(processes.log_file("region-x")) in message
    assert "No module named tools.no_such_module_here" in message
    assert earlier not in message
    assert earlier in processes.log_file("region-x").read_text()  # the history is kept


def test_log_since_shows_the_last_lines_written_after_the_offset(tmp_path):
    log = tmp_path / "cdk.log"
    log.write_text("old deploy succeeded\n")
    offset = log.stat().st_size
    with log.open("a") as output:
        output.write("".join(f"line {n}\n" for n in range(1, 41)))

    shown = log_since(log, offset, lines=5)

    assert shown == f"The last 5 lines it wrote to {log}:\nline 36\nline 37\nline 38\nline 39\nline 40"
    assert log_since(log, log.stat().st_size) == f"It wrote nothing to {log}."
    assert log_since(tmp_path / "missing.log", 0) == f"It wrote nothing to {tmp_path / 'missing.log'}."

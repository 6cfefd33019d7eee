"""hosts/local_disks.py: which disks are instance store, the exact plan for each host shape, the executor."""

import dataclasses
import json
from pathlib import Path

import pytest

from hosts import local_disks
from hosts.local_disks import (
    AppendLine,
    AppendOutput,
    Command,
    Disk,
    ForeignDataError,
    HostState,
    NoInstanceStoreError,
    Plan,
    append_line,
    discover_instance_store,
    execute,
    plan_raid0,
    read_host_state,
)

FIXTURES = Path(__file__).parent / "fixtures"

# Spelled out rather than imported, so a changed constant fails here.
ARRAY = "/dev/md/aviary-data"
FSTAB_LINE = "LABEL=aviary-data /data xfs noatime,nofail 0 0"
ADD_TO_FSTAB = AppendLine("/etc/fstab", FSTAB_LINE)
MKDIR = Command(("mkdir", "-p", "/data"))
SET_UP = HostState(data_source="/dev/md127", fstab_data_lines=(FSTAB_LINE,), array_recorded=True)


def lsblk(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def disks(name: str) -> list[Disk]:
    return discover_instance_store(lsblk(name))


def nvme(*indexes: int) -> list[str]:
    return [f"/dev/nvme{i}n1" for i in indexes]


def fresh_array_steps(paths: list[str]) -> tuple:
    return (
        Command(
            (
                "mdadm",
                "--create",
                ARRAY,
                "--level=0",
                f"--raid-devices={len(paths)}",
                "--name=aviary-data",
                "--run",
                *paths,
            )
        ),
        AppendOutput("/etc/mdadm.conf", ("mdadm", "--detail", "--brief", ARRAY)),
        Command(("mkfs.xfs", "-L", "aviary-data", ARRAY)),
        MKDIR,
        Command(("mount", "-o", "noatime", ARRAY, "/data")),
        ADD_TO_FSTAB,
    )


def all_words(plan: Plan) -> set[str]:
    words: set[str] = set()
    for step in plan.steps:
        words.update(getattr(step, "argv", ()))
        words.update(getattr(step, "line", "").split())
    return words


# Discovery


@pytest.mark.parametrize(
    ("fixture", "paths"),
    [
        ("m6i_large", []),
        ("m6id_large", nvme(1)),
        ("m6id_16xlarge", nvme(1, 2)),
        ("m6id_24xlarge", nvme(1, 2, 3, 4)),
        ("i3en_24xlarge", nvme(1, 2, 3, 4, 5, 6, 7, 8)),
        ("i4i_8xlarge_with_ebs", nvme(2, 3)),
        ("m6id_16xlarge_after_setup", nvme(1, 2)),
    ],
)
def test_discovers_only_instance_store_disks_in_path_order(fixture, paths):
    found = disks(fixture)
    assert [disk.path for disk in found] == paths
    assert all(disk.serial.startswith("AWS") for disk in found)


def test_discovered_disk_carries_what_the_planner_needs():
    assert disks("m6id_large") == [
        Disk(name="nvme1n1", path="/dev/nvme1n1", size_bytes=118_000_000_000, serial="AWS1A2B3C4D5E6F70819")
    ]
    (member, _) = disks("m6id_16xlarge_after_setup")
    assert (member.fstype, member.label) == ("linux_raid_member", "aviary-data")
    assert [(md.path, md.fstype, md.label, md.mountpoint) for md in member.children] == [
        ("/dev/md127", "xfs", "aviary-data", "/data")
    ]


def test_discovery_sorts_numerically_reads_string_sizes_and_wants_the_exact_model():
    model = "Amazon EC2 NVMe Instance Storage"
    found = discover_instance_store(
        {
            "blockdevices": [
                *(
                    {"name": f"nvme{i}n1", "type": "disk", "model": model, "size": "1900000000000"}
                    for i in (10, 2, 9)
                ),
                {"name": "nvme11n1", "type": "disk", "model": "Some Other NVMe SSD", "size": "1"},
            ]
        }
    )
    assert [disk.path for disk in found] == nvme(2, 9, 10)
    assert {disk.size_bytes for disk in found} == {1_900_000_000_000}


# Planning a fresh host


def test_no_instance_store_is_refused_with_the_reason():
    with pytest.raises(NoInstanceStoreError, match=r"no NVMe instance store.*timeline fleet needs one.*m6id"):
        plan_raid0(disks("m6i_large"), HostState())


def test_one_disk_is_formatted_directly_without_mdadm():
    plan = plan_raid0(disks("m6id_large"), HostState())
    assert plan.steps == (
        Command(("mkfs.xfs", "-L", "aviary-data", "/dev/nvme1n1")),
        MKDIR,
        Command(("mount", "-o", "noatime", "/dev/nvme1n1", "/data")),
        ADD_TO_FSTAB,
    )
    assert (
        plan.description == "format /dev/nvme1n1 as xfs; mount /dev/nvme1n1 at /data; add /data to /etc/fstab"
    )


@pytest.mark.parametrize(
    ("fixture", "paths"),
    [
        ("m6id_16xlarge", nvme(1, 2)),
        ("m6id_24xlarge", nvme(1, 2, 3, 4)),
        ("i3en_24xlarge", nvme(1, 2, 3, 4, 5, 6, 7, 8)),
        ("i4i_8xlarge_with_ebs", nvme(2, 3)),
    ],
)
def test_several_disks_become_one_recorded_raid0(fixture, paths):
    plan = plan_raid0(disks(fixture), HostState())
    assert plan.steps == fresh_array_steps(paths)
    assert plan.description.startswith(f"create RAID0 {ARRAY} from {len(paths)} disks; record it in")


def test_ebs_volumes_never_appear_in_any_step():
    ebs = {
        device["path"]
        for device in lsblk("i4i_8xlarge_with_ebs")["blockdevices"]
        if device["model"].strip() == "Amazon Elastic Block Store"
    }
    assert ebs == set(nvme(0, 1, 4))
    for state in (HostState(), HostState(fstab_data_lines=(FSTAB_LINE,), array_recorded=True)):
        assert not ebs & all_words(plan_raid0(disks("i4i_8xlarge_with_ebs"), state))


def test_plan_is_deterministic_whatever_the_order_of_the_disks():
    found = disks("i3en_24xlarge")
    plan = plan_raid0(found, HostState())
    assert plan_raid0(list(reversed(found)), HostState()) == plan
    assert plan_raid0(found, HostState()) == plan


# Re-runs and reboots


@pytest.mark.parametrize(
    ("fixture", "state", "description"),
    [
        ("m6id_16xlarge_after_setup", SET_UP, "nothing to do: /dev/md127 is mounted at /data"),
        (
            "m6id_large_after_setup",
            HostState(data_source="/dev/nvme1n1", fstab_data_lines=(FSTAB_LINE,)),
            "nothing to do: /dev/nvme1n1 is mounted at /data",
        ),
    ],
)
def test_rerun_after_setup_plans_nothing(fixture, state, description):
    assert plan_raid0(disks(fixture), state) == Plan((), description)


def test_reboot_reassembles_and_mounts_but_never_formats():
    plan = plan_raid0(
        disks("m6id_16xlarge_after_reboot"), HostState(fstab_data_lines=(FSTAB_LINE,), array_recorded=True)
    )
    assert plan.steps == (
        Command(("mdadm", "--assemble", ARRAY, "/dev/nvme1n1", "/dev/nvme2n1")),
        MKDIR,
        Command(("mount", "-o", "noatime", ARRAY, "/data")),
    )
    assert "mkfs.xfs" not in all_words(plan)


def test_reboot_without_a_record_reassembles_and_records_it():
    plan = plan_raid0(disks("m6id_16xlarge_after_reboot"), HostState(fstab_data_lines=(FSTAB_LINE,)))
    assert plan.steps[:2] == (
        Command(("mdadm", "--assemble", ARRAY, "/dev/nvme1n1", "/dev/nvme2n1")),
        AppendOutput("/etc/mdadm.conf", ("mdadm", "--detail", "--brief", ARRAY)),
    )
    assert "mkfs.xfs" not in all_words(plan)


def test_array_assembled_by_udev_but_unmounted_is_mounted_where_it_is():
    found = disks("m6id_16xlarge_after_setup")
    unmounted = [
        dataclasses.replace(disk, children=(dataclasses.replace(disk.children[0], mountpoint=None),))
        for disk in found
    ]
    plan = plan_raid0(unmounted, HostState(fstab_data_lines=(FSTAB_LINE,), array_recorded=True))
    assert plan.steps == (MKDIR, Command(("mount", "-o", "noatime", "/dev/md127", "/data")))


def test_array_created_but_never_formatted_is_formatted_once():
    found = disks("m6id_16xlarge_after_setup")
    bare = dataclasses.replace(found[0].children[0], fstype=None, label=None, mountpoint=None)
    plan = plan_raid0([dataclasses.replace(disk, children=(bare,)) for disk in found], HostState())
    assert plan.steps == (
        AppendOutput("/etc/mdadm.conf", ("mdadm", "--detail", "--brief", "/dev/md127")),
        Command(("mkfs.xfs", "-L", "aviary-data", "/dev/md127")),
        MKDIR,
        Command(("mount", "-o", "noatime", "/dev/md127", "/data")),
        ADD_TO_FSTAB,
    )


def test_stop_start_drops_the_stale_record_before_creating_again():
    state = HostState(fstab_data_lines=(FSTAB_LINE,), array_recorded=True)
    plan = plan_raid0(disks("m6id_16xlarge"), state)
    drop = Command(("sed", "-i", "-E", "/^ARRAY .* name=([^ :]+:)?aviary-data( |$)/d", "/etc/mdadm.conf"))
    assert plan.steps == (drop, *fresh_array_steps(nvme(1, 2))[:-1])


def test_members_named_with_the_homehost_prefix_are_ours():
    found = [
        dataclasses.replace(d, label="ip-10-0-1-23:aviary-data") for d in disks("m6id_16xlarge_after_reboot")
    ]
    plan = plan_raid0(found, HostState(fstab_data_lines=(FSTAB_LINE,), array_recorded=True))
    assert plan.steps[0] == Command(("mdadm", "--assemble", ARRAY, "/dev/nvme1n1", "/dev/nvme2n1"))


# Refusals: never wipe or hide what is not ours


def test_foreign_filesystem_on_an_instance_store_disk_is_refused():
    with pytest.raises(ForeignDataError, match=r"/dev/nvme1n1 already holds ext4 data labelled 'scratch'"):
        plan_raid0(disks("m6id_large_foreign_ext4"), HostState())


def test_partitions_on_an_instance_store_disk_are_refused():
    first, second = disks("m6id_16xlarge")
    partitioned = dataclasses.replace(
        second, children=(Disk(name="nvme2n1p1", path="/dev/nvme2n1p1", size_bytes=10**12, fstype="ext4"),)
    )
    with pytest.raises(ForeignDataError, match=r"/dev/nvme2n1 already holds partitions nvme2n1p1"):
        plan_raid0([first, partitioned], HostState())


@pytest.mark.parametrize(
    ("fstype", "label", "match"),
    [
        (
            "linux_raid_member",
            "ip-10-0-1-23:backup",
            r"/dev/nvme1n1 already holds linux_raid_member data labelled 'ip-10-0-1-23:backup'",
        ),
        ("xfs", "aviary-data", r"/dev/nvme1n1 already holds xfs data labelled 'aviary-data'"),
        (None, None, r"/dev/nvme1n1 blank while the other disks belong to aviary-data"),
    ],
)
def test_disks_that_do_not_fit_our_array_are_refused(fstype, label, match):
    first, second = disks("m6id_16xlarge_after_reboot")
    with pytest.raises(ForeignDataError, match=match):
        plan_raid0([dataclasses.replace(first, fstype=fstype, label=label), second], HostState())


def test_someone_elses_filesystem_on_our_array_is_refused():
    found = disks("m6id_16xlarge_after_setup")
    other = dataclasses.replace(found[0].children[0], fstype="ext4", label="old", mountpoint=None)
    with pytest.raises(ForeignDataError, match=r"/dev/md127 already holds ext4 data labelled 'old'"):
        plan_raid0([dataclasses.replace(disk, children=(other,)) for disk in found], HostState())


def test_something_else_mounted_at_data_is_not_mounted_over():
    with pytest.raises(ForeignDataError, match=r"/data is already mounted from /dev/nvme1n1"):
        plan_raid0(disks("i4i_8xlarge_with_ebs"), HostState(data_source="/dev/nvme1n1"))


def test_another_fstab_line_for_data_is_refused():
    state = HostState(fstab_data_lines=("/dev/nvme1n1 /data ext4 defaults 0 2",))
    with pytest.raises(ForeignDataError, match=r"/etc/fstab already mounts /data another way"):
        plan_raid0(disks("m6id_large"), state)


# Reading the host and executing


def test_read_host_state_parses_mounts_fstab_and_mdadm_conf():
    files = {
        "/etc/fstab": (
            "UUID=0b1c /     xfs  defaults,noatime  1 1\n"
            "#LABEL=old /data xfs defaults 0 0\n"
            "LABEL=aviary-data\t/data  xfs noatime,nofail 0 0\n"
        ),
        "/etc/mdadm.conf": "ARRAY /dev/md/aviary-data metadata=1.2 name=ip-10-0-1-23:aviary-data UUID=9f1e\n",
    }
    mounts = {
        "filesystems": [
            {"target": "/", "source": "/dev/nvme0n1p1"},
            {"target": "/data", "source": "/dev/nvme4n1"},
            # Mounted over the first: this is the one /data shows.
            {"target": "/data", "source": "/dev/md127"},
        ]
    }
    calls = []

    def run(argv):
        calls.append(tuple(argv))
        return json.dumps(mounts)

    assert read_host_state(run, lambda path: files.get(path, "")) == SET_UP
    assert calls == [("findmnt", "--json", "--list", "--output", "TARGET,SOURCE")]


def test_read_host_state_of_a_fresh_host():
    other_array = "ARRAY /dev/md/scratch metadata=1.2 name=aviary-data-old UUID=1:2:3:4\n"
    state = read_host_state(
        lambda argv: '{"filesystems": [{"target": "/", "source": "/dev/nvme0n1p1"}]}',
        lambda path: other_array if path == "/etc/mdadm.conf" else "",
    )
    assert state == HostState()


def test_execute_runs_exactly_the_planned_steps_in_order():
    plan = plan_raid0(disks("m6id_16xlarge"), HostState())
    record = "ARRAY /dev/md/aviary-data metadata=1.2 name=aviary-data UUID=9f1e:2a3b"
    calls, said = [], []

    def run(argv):
        calls.append(("run", *argv))
        return record + "\n" if argv[:2] == ("mdadm", "--detail") else ""

    execute(plan, run, lambda path, line: calls.append(("append", path, line)), said.append)
    assert calls == [
        ("run", *plan.steps[0].argv),
        ("run", "mdadm", "--detail", "--brief", ARRAY),
        ("append", "/etc/mdadm.conf", record),
        ("run", "mkfs.xfs", "-L", "aviary-data", ARRAY),
        ("run", "mkdir", "-p", "/data"),
        ("run", "mount", "-o", "noatime", ARRAY, "/data"),
        ("append", "/etc/fstab", FSTAB_LINE),
    ]
    assert said[0] == plan.description
    assert said[3] == f"+ mkfs.xfs -L aviary-data {ARRAY}"


def test_execute_stops_at_the_first_failing_command():
    calls = []

    def run(argv):
        calls.append(argv[0])
        if argv[0] == "mkfs.xfs":
            raise RuntimeError("mkfs.xfs failed")
        return ""

    with pytest.raises(RuntimeError):
        execute(
            plan_raid0(disks("m6id_large"), HostState()),
            run,
            lambda *_: calls.append("append"),
            lambda _: None,
        )
    assert calls == ["mkfs.xfs"]


def test_append_line_creates_the_file_and_never_glues_onto_a_last_line(tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("UUID=0b1c / xfs defaults 1 1")
    append_line(str(fstab), FSTAB_LINE)
    assert fstab.read_text() == f"UUID=0b1c / xfs defaults 1 1\n{FSTAB_LINE}\n"
    new = tmp_path / "mdadm.conf"
    append_line(str(new), "ARRAY /dev/md/aviary-data UUID=1")
    assert new.read_text() == "ARRAY /dev/md/aviary-data UUID=1\n"


def test_main_wires_discovery_state_planning_and_execution(monkeypatch, capsys):
    outputs = {
        "lsblk": (FIXTURES / "m6id_16xlarge_after_setup.json").read_text(),
        "findmnt": json.dumps({"filesystems": [{"target": "/data", "source": "/dev/md127"}]}),
        "mdadm": "ARRAY /dev/md127 metadata=1.2 name=aviary-data UUID=9f1e:2a3b\n",
    }
    calls = []

    def run(argv):
        calls.append(argv[0])
        return outputs[argv[0]]

    monkeypatch.setattr(local_disks, "_run", run)
    monkeypatch.setattr(local_disks, "_read_text", {"/etc/fstab": FSTAB_LINE, "/etc/mdadm.conf": ""}.get)
    monkeypatch.setattr(local_disks, "append_line", lambda path, line: calls.append(f"{path} << {line}"))
    local_disks.main()
    # Set up but not recorded in this mdadm.conf: recording it is all that is left.
    assert calls == [
        "lsblk",
        "findmnt",
        "mdadm",
        "/etc/mdadm.conf << ARRAY /dev/md127 metadata=1.2 name=aviary-data UUID=9f1e:2a3b",
    ]
    assert capsys.readouterr().out.startswith(
        "record it in /etc/mdadm.conf\n+ mdadm --detail --brief /dev/md127"
    )


def test_main_without_instance_store_exits_with_the_reason(monkeypatch):
    monkeypatch.setattr(local_disks, "_run", lambda argv: (FIXTURES / "m6i_large.json").read_text())
    monkeypatch.setattr(local_disks, "_read_text", lambda path: "")
    with pytest.raises(
        SystemExit, match=r"^aviary-local-disks: This instance type has no NVMe instance store"
    ):
        local_disks.main()

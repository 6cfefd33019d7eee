"""Puts a timeline host's NVMe instance-store disks under /data: one disk directly, several as RAID0.

Runs at boot from aviary-local-disks.service. Every decision lives in the pure `plan_raid0`;
`execute` only carries out its steps, so tests can pin each command. Instance store survives a
reboot but not a stop/start: a reboot must re-assemble and re-mount, never re-format, and data
this code did not create is never touched.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

INSTANCE_STORE_MODEL = "Amazon EC2 NVMe Instance Storage"
NAME = "aviary-data"  # the md array's name and the filesystem's label
MD_DEVICE = f"/dev/md/{NAME}"
DATA_DIR = "/data"
FSTAB = "/etc/fstab"
# Amazon Linux's mdadm reads /etc/mdadm.conf; Debian's /etc/mdadm/mdadm.conf is only its fallback
# when that file is missing, so a record there would be ignored once anything creates this one.
MDADM_CONF = "/etc/mdadm.conf"
# By label: NVMe names are not stable across boots. nofail: a host whose instance store came back
# empty after a stop/start must still boot far enough to run this again.
FSTAB_LINE = f"LABEL={NAME} {DATA_DIR} xfs noatime,nofail 0 0"
# The line `mdadm --detail --brief` writes for our array, with or without the homehost prefix
# mdadm adds when it fits in the superblock. Valid both for Python's re and `sed -E`.
ARRAY_RECORD = rf"^ARRAY .* name=([^ :]+:)?{NAME}( |$)"
# LABEL beyond the usual columns: it is how a disk is recognised as ours rather than someone else's.
LSBLK = ("lsblk", "--json", "--bytes", "--output", "NAME,PATH,TYPE,MODEL,SERIAL,SIZE,MOUNTPOINT,FSTYPE,LABEL")
FINDMNT = ("findmnt", "--json", "--list", "--output", "TARGET,SOURCE")

Run = Callable[[Sequence[str]], str]


class LocalDisksError(Exception):
    """The host's disks are not in a state this code may change; a person has to look."""


class NoInstanceStoreError(LocalDisksError):
    """The instance type has no NVMe instance store."""


class ForeignDataError(LocalDisksError):
    """Something on the disks, at /data or in /etc/fstab was not made by this code."""


@dataclass(frozen=True)
class Disk:
    """A block device as lsblk reports it; children are its partitions or the md array on it."""

    name: str
    path: str
    size_bytes: int
    serial: str | None = None
    fstype: str | None = None
    label: str | None = None
    mountpoint: str | None = None
    children: tuple[Disk, ...] = ()


@dataclass(frozen=True)
class HostState:
    """What lsblk does not say: what is mounted at /data and what the root volume remembers."""

    data_source: str | None = None  # the device mounted at /data, if any
    fstab_data_lines: tuple[str, ...] = ()  # /etc/fstab lines for /data, whitespace-normalised
    array_recorded: bool = False  # /etc/mdadm.conf has an ARRAY line for our array


@dataclass(frozen=True)
class Command:
    """Run argv; a failure stops the plan."""

    argv: tuple[str, ...]


@dataclass(frozen=True)
class AppendLine:
    """Append one line to a text file."""

    path: str
    line: str


@dataclass(frozen=True)
class AppendOutput:
    """Append what argv prints: the array's identity is only known once it exists."""

    path: str
    argv: tuple[str, ...]


Step = Command | AppendLine | AppendOutput


@dataclass(frozen=True)
class Plan:
    """The steps in order, and what they do in one sentence for the journal."""

    steps: tuple[Step, ...]
    description: str


def discover_instance_store(lsblk: dict) -> list[Disk]:
    """The NVMe instance-store disks in `lsblk --json` output, recognised by model, in path order.

    EBS volumes (the root one included) are NVMe too, and their names interleave with these.
    """
    disks = [
        _device(entry)
        for entry in lsblk.get("blockdevices", [])
        if entry.get("type") == "disk" and (entry.get("model") or "").strip() == INSTANCE_STORE_MODEL
    ]
    return sorted(disks, key=_path_order)


def plan_raid0(disks: Sequence[Disk], state: HostState) -> Plan:
    """The steps that leave an xfs filesystem labelled aviary-data on `disks`, mounted at /data.

    Pure. Raises instead of planning anything that could destroy data it did not create.
    """
    disks = sorted(disks, key=_path_order)
    if not disks:
        raise NoInstanceStoreError(
            "This instance type has no NVMe instance store, and the timeline fleet needs one for /data: "
            "use a type with local NVMe disks, such as m6id, c6id, r6id (the 'd' types) or i4i."
        )
    strange_fstab = [line for line in state.fstab_data_lines if line != FSTAB_LINE]
    if strange_fstab:
        raise ForeignDataError(
            f"{FSTAB} already mounts {DATA_DIR} another way ({strange_fstab[0]!r}); not adding ours"
        )

    steps: list[Step] = []
    said: list[str] = []

    def do(phrase: str, *new: Step) -> None:
        said.append(phrase)
        steps.extend(new)

    if len(disks) == 1:
        device, mounted = _plan_single(disks[0], do)
    else:
        device, mounted = _plan_array(disks, state, do)
    if not mounted:
        if state.data_source is not None:
            raise ForeignDataError(
                f"{DATA_DIR} is already mounted from {state.data_source}; not mounting {device} over it"
            )
        do(
            f"mount {device} at {DATA_DIR}",
            Command(("mkdir", "-p", DATA_DIR)),
            Command(("mount", "-o", "noatime", device, DATA_DIR)),
        )
    if FSTAB_LINE not in state.fstab_data_lines:
        do(f"add {DATA_DIR} to {FSTAB}", AppendLine(FSTAB, FSTAB_LINE))
    return Plan(tuple(steps), "; ".join(said) or f"nothing to do: {device} is mounted at {DATA_DIR}")


def _plan_single(disk: Disk, do: Callable[..., None]) -> tuple[str, bool]:
    if _is_blank(disk):
        do(f"format {disk.path} as xfs", _mkfs(disk.path))
        return disk.path, False
    if _is_our_filesystem(disk):
        return disk.path, disk.mountpoint == DATA_DIR
    raise ForeignDataError(_foreign(disk))


def _plan_array(disks: list[Disk], state: HostState, do: Callable[..., None]) -> tuple[str, bool]:
    paths = [disk.path for disk in disks]
    if all(_is_blank(disk) for disk in disks):
        if state.array_recorded:
            # A stop/start emptied the instance store; the root volume still names the old array.
            do("drop the stale array record", Command(("sed", "-i", "-E", f"/{ARRAY_RECORD}/d", MDADM_CONF)))
        create = ("mdadm", "--create", MD_DEVICE, "--level=0", f"--raid-devices={len(paths)}")
        do(
            f"create RAID0 {MD_DEVICE} from {len(paths)} disks",
            Command((*create, f"--name={NAME}", "--run", *paths)),
        )
        _record(MD_DEVICE, do)
        device, mounted, unformatted = MD_DEVICE, False, True
    else:
        foreign = [disk for disk in disks if not _is_blank(disk) and not _is_our_member(disk)]
        if foreign:
            raise ForeignDataError(_foreign(foreign[0]))
        blank = [disk.path for disk in disks if _is_blank(disk)]
        if blank:
            raise ForeignDataError(
                f"{', '.join(blank)} blank while the other disks belong to {NAME}: the array is incomplete; "
                "not guessing (replace the host)"
            )
        arrays = {child.path: child for disk in disks for child in disk.children}
        if not arrays:
            # Members but no array: a reboot that udev did not assemble. Formatted before, so no mkfs.
            do(f"re-assemble {MD_DEVICE}", Command(("mdadm", "--assemble", MD_DEVICE, *paths)))
            device, mounted, unformatted = MD_DEVICE, False, False
        elif len(arrays) == 1 and all(len(disk.children) == 1 for disk in disks):
            # Already assembled, maybe by udev under another name (md127): use what is there.
            (array,) = arrays.values()
            if array.fstype is not None and not _is_our_filesystem(array):
                raise ForeignDataError(_foreign(array))
            # No filesystem means an earlier run stopped between mdadm and mkfs; mkfs.xfs without
            # -f would still refuse to overwrite a filesystem lsblk had missed.
            device, mounted, unformatted = array.path, array.mountpoint == DATA_DIR, array.fstype is None
        else:
            raise ForeignDataError(f"{', '.join(paths)} are not all in one assembled array: {sorted(arrays)}")
        if not state.array_recorded:
            _record(device, do)
    if unformatted:
        do(f"format {device} as xfs", _mkfs(device))
    return device, mounted


def _record(device: str, do: Callable[..., None]) -> None:
    # So that a reboot re-assembles the array under the same name instead of leaving raw members.
    do(f"record it in {MDADM_CONF}", AppendOutput(MDADM_CONF, ("mdadm", "--detail", "--brief", device)))


def _mkfs(device: str) -> Command:
    return Command(("mkfs.xfs", "-L", NAME, device))


def _is_blank(disk: Disk) -> bool:
    return disk.fstype is None and disk.label is None and disk.mountpoint is None and not disk.children


def _is_our_filesystem(device: Disk) -> bool:
    return device.fstype == "xfs" and device.label == NAME


def _is_our_member(disk: Disk) -> bool:
    # mdadm stores "homehost:name" when that fits in the superblock, else just the name.
    return disk.fstype == "linux_raid_member" and (disk.label or "").rpartition(":")[2] == NAME


def _foreign(device: Disk) -> str:
    if device.fstype is None and device.children:
        held = "partitions " + ", ".join(child.name for child in device.children)
    else:
        held = f"{device.fstype} data" + (f" labelled {device.label!r}" if device.label else "")
    return (
        f"{device.path} already holds {held}, which this code did not create; "
        "refusing to touch it (unknown data is never wiped)"
    )


def _path_order(disk: Disk) -> list[int | str]:
    # Numbers compare as numbers, so nvme10n1 sorts after nvme9n1.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", disk.path)]


def _device(entry: dict) -> Disk:
    return Disk(
        name=entry["name"],
        path=entry.get("path") or f"/dev/{entry['name']}",
        # Older lsblk prints sizes as strings even with --bytes.
        size_bytes=int(entry.get("size") or 0),
        serial=(entry.get("serial") or "").strip() or None,
        fstype=entry.get("fstype") or None,
        label=entry.get("label") or None,
        mountpoint=entry.get("mountpoint") or None,
        children=tuple(_device(child) for child in entry.get("children", [])),
    )


# The thin, impure part: everything above decides, everything below only does.


def _run(argv: Sequence[str]) -> str:
    # stderr is not captured: it goes to the journal. check=True stops at the first failure.
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE, text=True).stdout


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        return ""


def _say(message: str) -> None:
    # Flushed so the journal keeps it in order with the commands' own stderr.
    print(message, flush=True)


def append_line(path: str, line: str) -> None:
    """Appends one line to a text file, creating the file if needed."""
    file = Path(path)
    existing = file.read_text() if file.exists() else ""
    with file.open("a") as out:
        # A file lacking its final newline would otherwise glue our line onto its last one.
        out.write(("\n" if existing and not existing.endswith("\n") else "") + line + "\n")


def read_host_state(run: Run, read_text: Callable[[str], str] = _read_text) -> HostState:
    """Reads what is mounted at /data and what /etc/fstab and /etc/mdadm.conf already hold.

    `read_text(path)` returns "" for a missing file.
    """
    mounts = json.loads(run(FINDMNT)).get("filesystems", [])
    sources = [mount["source"] for mount in mounts if mount.get("target") == DATA_DIR]
    fstab = [line.split() for line in read_text(FSTAB).splitlines()]
    data_lines = [fields for fields in fstab if len(fields) > 1 and fields[1] == DATA_DIR]
    return HostState(
        # The last mount at /data is the one that hides the others.
        data_source=sources[-1] if sources else None,
        fstab_data_lines=tuple(" ".join(fields) for fields in data_lines if not fields[0].startswith("#")),
        array_recorded=any(re.search(ARRAY_RECORD, line) for line in read_text(MDADM_CONF).splitlines()),
    )


def execute(
    plan: Plan, run: Run, append: Callable[[str, str], None] = append_line, say: Callable[[str], None] = _say
) -> None:
    """Carries out the plan's steps in order, saying each first; stops at the first that fails."""
    say(plan.description)
    for step in plan.steps:
        match step:
            case Command(argv):
                say(f"+ {shlex.join(argv)}")
                run(argv)
            case AppendLine(path, line):
                say(f"+ append to {path}: {line}")
                append(path, line)
            case AppendOutput(path, argv):
                say(f"+ {shlex.join(argv)} >> {path}")
                append(path, run(argv).strip())


def main() -> None:
    """aviary-local-disks.service: find the instance store, plan, and carry the plan out."""
    try:
        disks = discover_instance_store(json.loads(_run(LSBLK)))
        plan = plan_raid0(disks, read_host_state(_run, _read_text))
    except LocalDisksError as error:
        sys.exit(f"aviary-local-disks: {error}")
    execute(plan, _run, append_line, _say)


if __name__ == "__main__":
    main()

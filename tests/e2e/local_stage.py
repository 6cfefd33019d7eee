"""A second local stage for the end-to-end tests: its own ports and state directory, so a
developer's own `make deploy-local` on the default ports is left alone."""

from __future__ import annotations

import os
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.cloud_assembly import PROJECT

MOTO_PORT = 5310
FRONT_DOOR_PORT = 8310
FIRST_API_PORT = 8311
MAKE_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class LocalStageUnderTest:
    state_dir: Path
    regions: tuple[str, ...]

    @property
    def environment(self) -> dict[str, str]:
        environment = {
            **os.environ,
            "AVIARY_LOCAL_STATE_DIR": str(self.state_dir),
            "AVIARY_LOCAL_MOTO_PORT": str(MOTO_PORT),
            "AVIARY_LOCAL_FRONT_DOOR_PORT": str(FRONT_DOOR_PORT),
            "AVIARY_LOCAL_FIRST_API_PORT": str(FIRST_API_PORT),
        }
        # The tests' fake AWS settings must not reach the stage: it sets its own, pointing at moto.
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            environment.pop(name, None)
        return environment

    @property
    def front_door(self) -> str:
        return f"http://127.0.0.1:{FRONT_DOOR_PORT}"

    def api(self, region: str) -> str:
        return f"http://127.0.0.1:{FIRST_API_PORT + self.regions.index(region)}"

    @property
    def endpoint(self) -> str:
        return f"http://localhost:{MOTO_PORT}"

    def make(
        self, *arguments: str, timeout: float = MAKE_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "-s", *arguments],
            cwd=PROJECT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def bash(self, script: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=PROJECT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def ports_in_use(regions: tuple[str, ...]) -> list[int]:
    ports = [MOTO_PORT, FRONT_DOOR_PORT, *(FIRST_API_PORT + i for i in range(len(regions)))]
    taken = []
    for port in ports:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


def walkthrough_script(readme: str, stage: LocalStageUnderTest) -> str:
    """The README's walk-through block, with its first line (the URLs) pointing at this stage."""
    block = readme.split("<!-- walkthrough:start -->", 1)[1].split("<!-- walkthrough:end -->", 1)[0]
    lines = block.strip().removeprefix("```sh").removesuffix("```").strip().splitlines()
    first, rest = lines[0], lines[1:]
    if not first.startswith("FRONT_DOOR=http://127.0.0.1:8080 "):
        raise AssertionError(f"the walk-through must start by naming its URLs, not with {first!r}")
    urls = [f"FRONT_DOOR={stage.front_door}"] + [
        f"{region.upper().replace('-', '_')}={stage.api(region)}" for region in stage.regions
    ]
    return "\n".join([" ".join(urls), *rest])

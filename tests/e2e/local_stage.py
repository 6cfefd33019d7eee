"""A second local stage for the end-to-end tests: its own ports and state directory, so a
developer's own `make deploy-local` on the default ports is left alone."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.cloud_assembly import PROJECT
from tools.local_runtime.processes import port_in_use
from tools.local_runtime.settings import LocalSettings, load_local_settings

PORTS = {
    "AVIARY_LOCAL_MOTO_PORT": "5310",
    "AVIARY_LOCAL_DYNAMODB_PORT": "5311",
    "AVIARY_LOCAL_FRONT_DOOR_PORT": "8310",
    "AVIARY_LOCAL_FIRST_API_PORT": "8311",
}
MAKE_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class LocalStageUnderTest:
    state_dir: Path

    @property
    def environment(self) -> dict[str, str]:
        """What every make command of this stage runs with."""
        environment = {**os.environ, **PORTS, "AVIARY_LOCAL_STATE_DIR": str(self.state_dir)}
        # The tests' fake AWS settings must not reach the stage: it sets its own, pointing at moto.
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            environment.pop(name, None)
        return environment

    @property
    def settings(self) -> LocalSettings:
        """The stage's settings as its own processes read them: ports, URLs, regions."""
        return load_local_settings(self.environment)

    def ports_in_use(self) -> list[int]:
        settings = self.settings
        ports = [
            settings.moto_port,
            settings.dynamodb_port,
            settings.front_door_port,
            *map(settings.api_port, settings.regions),
        ]
        return [port for port in ports if port_in_use(settings.host, port)]

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

    def run_module(
        self, module: str, *arguments: str, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """`python -m module arguments` from the project's venv, with this stage's environment."""
        return subprocess.run(
            [sys.executable, "-m", module, *arguments],
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


def walkthrough_script(readme: str, settings: LocalSettings) -> str:
    """The README's walk-through block, with its first line (the URLs) pointing at this stage."""
    block = readme.split("<!-- walkthrough:start -->", 1)[1].split("<!-- walkthrough:end -->", 1)[0]
    lines = block.strip().removeprefix("```sh").removesuffix("```").strip().splitlines()
    first, rest = lines[0], lines[1:]
    if not first.startswith("FRONT_DOOR=http://127.0.0.1:8080 "):
        raise AssertionError(f"the walk-through must start by naming its URLs, not with {first!r}")
    urls = [f"FRONT_DOOR={settings.front_door_url}"] + [
        f"{region.upper().replace('-', '_')}={settings.api_url(region)}" for region in settings.regions
    ]
    return "\n".join([" ".join(urls), *rest])

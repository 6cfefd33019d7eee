"""The code the timeline hosts run, packed as one S3 asset: sources, systemd units and wheels.

Hosts sit in isolated subnets with no route to the internet, so the bundle carries every
Python dependency as a wheel (built by `make host-wheels`) and the host installs offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

PROJECT = Path(__file__).resolve().parents[2]
SOURCE_PACKAGES = ("aviary", "hosts")


def wheels_dir(architecture: str) -> Path:
    """Where `make host-wheels` puts the hosts' wheels for one CPU architecture."""
    return PROJECT / "build" / "host-wheels" / architecture


@jsii.implements(ILocalBundling)
class _CopyIntoBundle:
    """Bundles by copying files: no Docker, no network, deterministic."""

    def __init__(self, architecture: str) -> None:
        self._wheels = wheels_dir(architecture)

    def try_bundle(self, output_dir: str, *, image=None, **_options) -> bool:
        if not (self._wheels / ".complete").exists():
            raise RuntimeError(
                f"The timeline hosts' wheels are missing from {self._wheels}; run `make host-wheels` "
                "(make synth and make test do it for you)."
            )
        out = Path(output_dir)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in SOURCE_PACKAGES:
            shutil.copytree(PROJECT / package, out / package, ignore=ignore, dirs_exist_ok=True)
        shutil.copytree(self._wheels, out / "wheels", ignore=shutil.ignore_patterns(".complete"))
        return True


class HostBundle(Construct):
    """A zip in the bootstrap bucket; hosts fetch it through the S3 gateway endpoint."""

    def __init__(self, scope: Construct, construct_id: str, *, architecture: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(
            self,
            "Asset",
            path=str(PROJECT / "hosts"),
            asset_hash_type=AssetHashType.OUTPUT,
            bundling=BundlingOptions(
                # Never pulled: local bundling always succeeds or raises.
                image=DockerImage.from_registry("aviary-local-bundling-only"),
                local=_CopyIntoBundle(architecture),
            ),
        )

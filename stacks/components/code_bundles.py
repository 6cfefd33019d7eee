"""Code assets built by copying files: the hosts' bundle and the write-path functions' bundle.

Neither the hosts (no internet route) nor synth (no network, no Docker) may download
anything, so third-party code is fetched beforehand by `make` (host-wheels, lambda-deps)
and only copied here: deterministic, offline, and the same pins the tests use.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

PROJECT = Path(__file__).resolve().parents[2]
BUILD = PROJECT / "build"


def wheels_dir(architecture: str) -> Path:
    """Where `make host-wheels` puts the hosts' wheels for one CPU architecture."""
    return BUILD / "host-wheels" / architecture


LAMBDA_DEPS = BUILD / "lambda-deps"  # `make lambda-deps`: lambda_functions/requirements.txt, installed


@jsii.implements(ILocalBundling)
class _CopyIntoBundle:
    """Copies our packages and one prebuilt folder into the asset; fails clearly if it is missing."""

    def __init__(
        self, packages: tuple[str, ...], prebuilt: Path, prebuilt_into: str, make_target: str
    ) -> None:
        self._packages = packages
        self._prebuilt = prebuilt
        self._prebuilt_into = prebuilt_into
        self._make_target = make_target

    def try_bundle(self, output_dir: str, *, image=None, **_options) -> bool:
        if not (self._prebuilt / ".complete").exists():
            raise RuntimeError(
                f"{self._prebuilt} is missing; run `make {self._make_target}` "
                "(make synth and make test do it for you)."
            )
        out = Path(output_dir)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for package in self._packages:
            shutil.copytree(PROJECT / package, out / package, ignore=ignore, dirs_exist_ok=True)
        shutil.copytree(
            self._prebuilt,
            out / self._prebuilt_into,
            ignore=shutil.ignore_patterns(".complete", "__pycache__", "*.pyc", "bin"),
            dirs_exist_ok=True,
        )
        return True


def _bundling(local: _CopyIntoBundle) -> BundlingOptions:
    # The image is never pulled: local bundling always succeeds or raises.
    return BundlingOptions(image=DockerImage.from_registry("aviary-local-bundling-only"), local=local)


class HostBundle(Construct):
    """aviary/, hosts/ and the hosts' wheels, as a zip the hosts fetch through the S3 gateway endpoint."""

    def __init__(self, scope: Construct, construct_id: str, *, architecture: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = s3_assets.Asset(
            self,
            "Asset",
            path=str(PROJECT / "hosts"),
            asset_hash_type=AssetHashType.OUTPUT,
            bundling=_bundling(
                _CopyIntoBundle(("aviary", "hosts"), wheels_dir(architecture), "wheels", "host-wheels")
            ),
        )


def lambda_code() -> lambda_.Code:
    """aviary/, lambda_functions/ and Powertools at the top level: one asset for every write-path function."""
    return lambda_.Code.from_asset(
        str(PROJECT / "lambda_functions"),
        asset_hash_type=AssetHashType.OUTPUT,
        bundling=_bundling(_CopyIntoBundle(("aviary", "lambda_functions"), LAMBDA_DEPS, ".", "lambda-deps")),
    )

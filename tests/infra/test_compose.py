"""docker-compose.yml cannot run here (no Docker engine), so check it refers to real things."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dibao_common.testing.stack import REPO_ROOT, SERVICES

PORTS = {"intake": 8001, "assessment": 8002, "publicity": 8003, "payments": 8004, "audit": 8005}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_service_is_built_from_the_repository_with_its_port() -> None:
    services = _compose()["services"]
    for name in SERVICES:
        svc = services[name]
        context = (REPO_ROOT / svc["build"]["context"]).resolve()
        dockerfile = context / svc["build"]["dockerfile"]
        assert dockerfile.is_file(), dockerfile
        assert svc["build"]["args"]["SERVICE"] == name
        assert f"{PORTS[name]}:8000" in svc["ports"]
        assert (REPO_ROOT / "services" / name / "src" / f"dibao_{name}" / "main.py").is_file()
        assert services[f"{name}-migrate"]["restart"] == "no"
        assert svc["depends_on"][f"{name}-migrate"]["condition"] == "service_completed_successfully"


def test_environment_matches_the_settings_the_services_read() -> None:
    import importlib

    from pydantic_settings import BaseSettings

    services = _compose()["services"]
    secrets = {line.split("=", 1)[0] for line in _dev_secret_names()}
    for name in SERVICES:
        # The variables the service's own settings class reads (the kit's among them).
        module = importlib.import_module(f"dibao_{name}.settings")
        classes = [
            c
            for c in vars(module).values()
            if isinstance(c, type)
            and issubclass(c, BaseSettings)
            and c.__module__ == module.__name__
        ]
        assert len(classes) == 1, classes
        known = {f"DIBAO_{f.upper()}" for f in classes[0].model_fields} | secrets
        env = services[name]["environment"]
        assert env["DIBAO_SERVICE_NAME"] == name
        assert env["DIBAO_DATABASE_URL"].endswith(f"/dibao_{name}")
        assert env["DIBAO_KAFKA_BOOTSTRAP"] == "kafka:9092"
        assert set(env) <= known, set(env) - known


def test_every_app_sets_the_housekeeping_with_the_settings_defaults() -> None:
    from dibao_common.settings import CommonSettings

    services = _compose()["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        for field in ("idempotency_retention_s", "housekeeping_interval_s"):
            var = f"DIBAO_{field.upper()}"
            match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", str(env.get(var)))
            assert match is not None, f"{name}: {var} = {env.get(var)!r}"
            assert match[1] == var
            default = CommonSettings.model_fields[field].default
            assert float(match[2]) == default, f"{name}: {var} defaults to {match[2]}"


def test_images_are_the_official_ones_and_topics_are_declared() -> None:
    services = _compose()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["postgres"]["image"].startswith("postgres:")
    topics_file = REPO_ROOT / "deploy" / "kafka" / "topics.conf"
    assert topics_file.is_file()
    init = services["kafka-topics"]
    assert any("topics.conf" in str(v) for v in init["volumes"])


def test_mounted_files_migration_folders_and_databases_exist() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO_ROOT / source).is_file(), f"{name} mounts {source}"
    init_sql = (REPO_ROOT / "deploy" / "docker" / "postgres-init.sql").read_text()
    created = set(re.findall(r"^CREATE DATABASE (\w+);", init_sql, flags=re.MULTILINE))
    for name in SERVICES:
        migrate = services[f"{name}-migrate"]
        # The image copies the repository to /app (deploy/docker/Dockerfile).
        folder = REPO_ROOT / migrate["working_dir"].removeprefix("/app/")
        assert (folder / "alembic.ini").is_file(), folder
        assert migrate["command"][:3] == ["alembic", "-c", "alembic.ini"]
        url = services[name]["environment"]["DIBAO_DATABASE_URL"]
        assert migrate["environment"]["DIBAO_DATABASE_URL"] == url
        assert url.rsplit("/", 1)[1] in created


def _dev_secret_names() -> list[str]:
    import tempfile

    from dibao_common import devsecrets

    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "secrets.env"
        devsecrets.create(env_file)
        return env_file.read_text().splitlines()


def test_the_audit_service_logs_in_as_its_runtime_role_not_the_owner() -> None:
    env = _compose()["services"]["audit"]["environment"]
    runtime = env["DIBAO_AUDIT_RUNTIME_DATABASE_URL"]
    login = runtime.split("//", 1)[1].split(":", 1)[0]
    assert login == "dibao_audit_app"  # `<database>_app`, the role migration 0002 grants
    assert login != env["DIBAO_DATABASE_URL"].split("//", 1)[1].split(":", 1)[0]
    init = (REPO_ROOT / "deploy" / "docker" / "postgres-init.sql").read_text()
    assert f"CREATE ROLE {login} LOGIN PASSWORD" in init


def test_the_witness_runs_from_the_audit_image_with_its_own_key_and_state() -> None:
    """The witness (docs/adr/0024) is the audit image running ``dibao_audit.witness`` on
    the port it publishes, with only the variables the witness reads, none of the log's
    secrets, its state on a volume of its own that the image's user owns; every value it
    and audit's DIBAO_AUDIT_WITNESSES take from .env is one ``dibao_audit.devwitness``
    writes there, told the witness's URL in the compose network."""
    import tempfile

    from dibao_audit import devwitness, witness
    from dibao_common import devsecrets

    services = _compose()["services"]
    svc = services["witness"]
    assert svc["build"] == services["audit"]["build"]
    assert svc["command"][:3] == ["python", "-m", "dibao_audit.witness"]
    port = svc["command"][svc["command"].index("--port") + 1]
    assert f"{port}:{port}" in svc["ports"]
    assert f"localhost:{port}/healthz" in svc["healthcheck"]["test"][-1]
    env = svc["environment"]
    source = Path(witness.__file__).read_text()
    assert all(var.startswith("DIBAO_WITNESS_") and f'"{var}"' in source for var in env), env
    volume, mounted = svc["volumes"][0].split(":", 1)
    assert volume in _compose()["volumes"]
    assert Path(env["DIBAO_WITNESS_STATE"]).parent == Path(mounted)
    dockerfile = (REPO_ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    assert f"install -d -o dibao {mounted}" in dockerfile
    # The command the compose file names writes every variable it takes from .env.
    message = re.search(r":\?run (python -m dibao_audit.devwitness .*) first\}", str(env))
    assert message is not None
    url = message[1].split("--url ", 1)[1]
    assert url == f"http://witness:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        dot_env = Path(tmp) / ".env"
        devsecrets.create(dot_env)
        devwitness.create(dot_env, dot_env, url=url, name="witness.test/compose", environ={})
        written = devwitness.read_env(dot_env)
    taken = {
        m[1]
        for value in [*env.values(), services["audit"]["environment"]["DIBAO_AUDIT_WITNESSES"]]
        for m in re.finditer(r"\$\{(\w+)", str(value))
    }
    assert taken == {*(v for v in env if v != "DIBAO_WITNESS_STATE"), "DIBAO_AUDIT_WITNESSES"}
    assert taken <= set(written), taken - set(written)
    assert written["DIBAO_AUDIT_WITNESSES"].startswith(f"{url} ")

"""The operator scripts' downloads on a machine that may be new (CI's): each is retried with
backoff, checked against what its registry publishes, and fails naming what could not be
installed; nothing is taken from this machine's own setup (a temporary HOME and PATH).
The registries are the real ones (PyPI), or a Maven repository served here from this
machine's Maven cache, once refusing connections and once with one jar's bytes changed,
or an npm registry that refuses connections."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dibao_common.testing.stack import REPO_ROOT

pytestmark = [pytest.mark.slow]

LIB_SH = REPO_ROOT / "deploy" / "lib.sh"
KAFKA_SH = REPO_ROOT / "deploy" / "kafka" / "kafka.sh"
KAFKA_VERSION = "4.1.1"
CORRUPTED = f"kafka-clients-{KAFKA_VERSION}.jar"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIBAO_", "MAVEN_"))}
    return env | {
        "HOME": str(home),
        "DIBAO_INSTANCE": "downloads",
        "DIBAO_STATE_DIR": str(home / "state"),
        "DIBAO_PG_PORT": "1",
        "DIBAO_KAFKA_PORT": "1",
        "DIBAO_SVC_PORT_BASE": "1",
        **extra,
    }


def test_a_failing_command_is_retried_with_backoff(tmp_path: Path) -> None:
    """Two failures, then success: three attempts, 1 s then 2 s apart. Always failing:
    DIBAO_RETRIES attempts, then the failure, named."""
    counter = tmp_path / "attempts"
    flaky = f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) >{counter}; ((n >= 2))"
    script = f"source {LIB_SH}; retry \"the flaky download\" bash -c '{flaky}'"
    env = _env(tmp_path, DIBAO_RETRY_WAIT="1")
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert counter.read_text().strip() == "3"
    assert "the flaky download failed (exit status 1, attempt 1 of 4): again in 1 s" in done.stderr
    assert "the flaky download failed (exit status 1, attempt 2 of 4): again in 2 s" in done.stderr
    assert 3 <= took < 20, took

    script = f'source {LIB_SH}; retry "the broken download" bash -c "exit 7"; echo "status $?"'
    env = _env(tmp_path, DIBAO_RETRIES="2", DIBAO_RETRY_WAIT="0")
    done = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "status 7", done.stdout + done.stderr
    assert "ERROR: the broken download failed 2 times (last exit status 7)" in done.stderr


def _pinned_uv() -> str:
    pinned = re.search(
        r"^uv==(\S+)", (REPO_ROOT / "deploy" / "uv-requirements.txt").read_text(), re.M
    )
    assert pinned is not None
    return pinned[1]


def _uv_version(uv: Path | str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(uv), "--version"], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    words = done.stdout.split()
    assert words[0] == "uv", done.stdout
    return words[1]


def test_a_fresh_home_gets_the_pinned_uv_from_pypi(tmp_path: Path) -> None:
    """No uv on PATH and none in ~/.local/bin: bootstrap installs the uv of
    deploy/uv-requirements.txt from PyPI with the sha256 PyPI publishes (pip
    --require-hashes), into the HOME it is given."""
    home = tmp_path / "home"
    done = _bootstrap_uv(_env(home, PATH="/usr/local/bin:/usr/bin:/bin"))
    assert done.returncode == 0, done.stderr
    assert _uv_version(home / ".local" / "bin" / "uv") == _pinned_uv()


OTHER_UV = "0.13.8"
"""A real uv of another version than the pinned one, as a user may have installed."""


@pytest.fixture(scope="module")
def other_uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """uv OTHER_UV from PyPI (the uv running this suite installs it into a directory)."""
    assert _pinned_uv() != OTHER_UV
    target = tmp_path_factory.mktemp("other-uv")
    subprocess.run(
        [
            "uv",
            "pip",
            "install",
            "--quiet",
            "--only-binary=:all:",
            "--target",
            str(target),
            f"uv=={OTHER_UV}",
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    uv = target / "bin" / "uv"
    assert _uv_version(uv) == OTHER_UV
    return uv


def _users_uv(home: Path, where: str, binary: Path) -> tuple[Path, str]:
    """A copy of <binary> installed as the user's uv: in ~/.local/bin (where pip --user
    would write) or in a directory of its own; the PATH that finds it."""
    bin_dir = home / ".local" / "bin" if where == "home" else home.parent / "users-tools"
    bin_dir.mkdir(parents=True)
    shutil.copy2(binary, bin_dir / "uv")
    return bin_dir / "uv", f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"


def _script(env: dict[str, str], script: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``bash <script> <args>`` (a path in the checkout) in ``env``, its output captured."""
    return subprocess.run(
        ["bash", str(REPO_ROOT / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _bootstrap_uv(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _script(env, "deploy/bootstrap.sh", "uv")


def _scripts_uv(env: dict[str, str]) -> str:
    """The version of the uv that the scripts run (after sourcing lib.sh)."""
    done = subprocess.run(
        ["bash", "-c", f"source {LIB_SH}; uv --version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.split()[1]


@pytest.mark.parametrize("where", ["home", "elsewhere"])
def test_a_uv_of_another_version_is_left_alone_and_the_pinned_one_used(
    tmp_path: Path, other_uv: Path, where: str
) -> None:
    """A uv of another version than the pinned one (in ~/.local/bin, or in a directory of
    the user's own on PATH) is not used and not modified: bootstrap says so once, installs
    the pinned uv from PyPI into the project's tool directory, and every script then runs
    that one. A second bootstrap finds it and says nothing."""
    pinned = _pinned_uv()
    home = tmp_path / "home"
    users, path = _users_uv(home, where, other_uv)
    before = (users.read_bytes(), users.stat().st_mtime_ns)
    env = _env(home, PATH=path)
    done = _bootstrap_uv(env)
    assert done.returncode == 0, done.stderr
    said = f"uv {OTHER_UV} at {users} is not the pinned {pinned} (deploy/uv-requirements.txt)"
    assert done.stderr.count(said) == 1, done.stderr
    tool = home / ".cache" / "dibao" / "uv" / pinned / "bin" / "uv"
    assert _uv_version(tool) == pinned
    assert _scripts_uv(env) == pinned
    assert (users.read_bytes(), users.stat().st_mtime_ns) == before
    assert _uv_version(users) == OTHER_UV
    if where == "elsewhere":
        assert not (home / ".local" / "bin" / "uv").exists()

    again = _bootstrap_uv(env)
    assert again.returncode == 0, again.stderr
    assert "not the pinned" not in again.stderr
    assert "installing" not in again.stderr
    assert _scripts_uv(env) == pinned


def test_a_uv_of_the_pinned_version_is_used_as_it_is(tmp_path: Path) -> None:
    """The user's uv is the pinned version: used, nothing installed."""
    pinned = _pinned_uv()
    running = shutil.which("uv")
    assert running is not None
    assert _uv_version(running) == pinned
    home = tmp_path / "home"
    _, path = _users_uv(home, "elsewhere", Path(running))
    env = _env(home, PATH=path)
    done = _bootstrap_uv(env)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert not (home / ".cache" / "dibao" / "uv").exists()
    assert not (home / ".local" / "bin" / "uv").exists()
    assert _scripts_uv(env) == pinned


def test_bench_on_a_running_stack_runs_the_pinned_uv(tmp_path: Path) -> None:
    """bench/run.sh given a running stack (DIBAO_TEST_PG_DSN and DIBAO_TEST_KAFKA_BOOTSTRAP)
    starts nothing and sources no lib.sh, but runs the uv every script runs: the pinned one
    in the project's tool directory, though no uv is on PATH or in ~/.local/bin."""
    pinned = _pinned_uv()
    running = shutil.which("uv")
    assert running is not None
    home = tmp_path / "home"
    tool = home / ".cache" / "dibao" / "uv" / pinned / "bin" / "uv"
    tool.parent.mkdir(parents=True)
    shutil.copy2(running, tool)
    path = "/usr/local/bin:/usr/bin:/bin"
    assert shutil.which("uv", path=path) is None
    env = _env(
        home,
        PATH=path,
        DIBAO_TEST_PG_DSN="postgresql://dibao@127.0.0.1:1/postgres",
        DIBAO_TEST_KAFKA_BOOTSTRAP="127.0.0.1:1",
    )
    done = _script(env, "bench/run.sh", "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout, done.stdout


def _maven_home() -> Path:
    """The home Maven reads its cache from: Java's user.home comes from the password
    database, not from $HOME."""
    return Path(pwd.getpwuid(os.getuid()).pw_dir)


@pytest.fixture(scope="module")
def maven_cache() -> Path:
    """This machine's Maven cache, holding what kafka.sh fetch resolves (resolved into it
    from Maven Central first, as kafka.sh does, when it does not)."""
    repository = _maven_home() / ".m2" / "repository"
    jar = repository / "org" / "apache" / "kafka" / "kafka-clients" / KAFKA_VERSION / CORRUPTED
    if not jar.is_file() or not jar.with_name(f"{CORRUPTED}.sha1").is_file():
        subprocess.run(
            ["mvn", "-q", "-B", "-f", str(KAFKA_SH.parent / "pom.xml"), "dependency:resolve"],
            check=True,
            timeout=900,
            capture_output=True,
        )
    return repository


MIRROR = """
import http.server, pathlib, sys
root, corrupt = pathlib.Path(sys.argv[1]), sys.argv[2]

class Mirror(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        path = root / self.path.split("?")[0].lstrip("/")
        # The local cache keeps a repository's metadata under the repository's id.
        if not path.is_file() and path.name == "maven-metadata.xml":
            path = path.with_name("maven-metadata-central.xml")
        if not path.is_file() or ".." in self.path:
            self.send_response(404)
            self.end_headers()
            return
        data = path.read_bytes()
        if path.name == corrupt:
            data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
print(server.server_address[1], flush=True)
server.serve_forever()
"""
"""A Maven repository served from a local Maven cache, one file's bytes changed in transit
(its published .sha1 unchanged)."""


def _maven_home_with_mirror(home: Path, url: str) -> None:
    (home / ".m2").mkdir(parents=True)
    (home / ".m2" / "settings.xml").write_text(
        "<settings>"
        f"<localRepository>{home / '.m2' / 'repository'}</localRepository>"
        f"<mirrors><mirror><id>test</id><mirrorOf>*</mirrorOf><url>{url}</url></mirror></mirrors>"
        "</settings>"
    )


def _fetch(home: Path, **extra: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = _env(home, MAVEN_OPTS=f"-Duser.home={home}", **extra)
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(KAFKA_SH), "fetch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return done, time.monotonic() - started


@pytest.fixture
def corrupting_mirror(maven_cache: Path) -> Iterator[str]:
    with subprocess.Popen(
        [sys.executable, "-c", MIRROR, str(maven_cache), CORRUPTED],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            yield f"http://127.0.0.1:{int(process.stdout.readline())}"
        finally:
            process.kill()


def test_kafka_jars_from_a_repository_that_refuses_are_retried_then_fail(
    tmp_path: Path,
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        refused = s.getsockname()[1]
    home = tmp_path / "home"
    _maven_home_with_mirror(home, f"http://127.0.0.1:{refused}")
    done, took = _fetch(home, DIBAO_RETRIES="2", DIBAO_RETRY_WAIT="1")
    assert done.returncode != 0
    assert "failed (exit status 1, attempt 1 of 2): again in 1 s" in done.stderr, done.stderr
    assert "failed 2 times" in done.stderr, done.stderr
    assert f"could not fetch the Kafka {KAFKA_VERSION} jars from Maven Central" in done.stderr
    assert not (home / ".cache" / "dibao" / "kafka" / KAFKA_VERSION / "libs").exists()
    assert took < 120, took


def test_a_kafka_jar_that_does_not_match_its_checksum_is_refused(
    tmp_path: Path, corrupting_mirror: str
) -> None:
    """Maven by default only warns on a checksum mismatch and keeps the file; the broker
    would then run a jar nobody published."""
    home = tmp_path / "home"
    _maven_home_with_mirror(home, corrupting_mirror)
    done, _ = _fetch(home, DIBAO_RETRIES="1")
    assert done.returncode != 0, done.stderr[-2000:]
    assert "Checksum validation failed" in done.stderr, done.stderr[-2000:]
    assert CORRUPTED.removesuffix(".jar").rsplit("-", 1)[0] in done.stderr
    assert not (home / ".cache" / "dibao" / "kafka" / KAFKA_VERSION / "libs").exists()


def _refused_port() -> int:
    """A loopback port nothing listens on: a connection there is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_buf_from_an_npm_registry_that_refuses_is_retried_then_fails(tmp_path: Path) -> None:
    """proto-schemas/buf.sh installs buf on first use (its own `npm ci`, which .ci/run's
    `buf breaking` and any direct use reach) as every other download is: retried with
    backoff, then failing naming what could not be installed. A copy of the scripts and
    of proto-schemas without node_modules (the checkout's own is left alone), a fresh HOME
    (no npm cache to install from), and a registry that refuses connections (npm's own
    retries off, so each attempt is one refusal)."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "deploy", repo / "deploy")
    (repo / "proto-schemas").mkdir()
    for name in ("buf.sh", "buf.yaml", "package.json", "package-lock.json"):
        shutil.copy2(REPO_ROOT / "proto-schemas" / name, repo / "proto-schemas" / name)
    env = _env(
        tmp_path / "home",
        DIBAO_RETRIES="2",
        DIBAO_RETRY_WAIT="1",
        npm_config_registry=f"http://127.0.0.1:{_refused_port()}/",
        npm_config_fetch_retries="0",
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", str(repo / "proto-schemas" / "buf.sh"), "lint"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode != 0, done.stderr
    assert "npm ci (buf) failed (exit status" in done.stderr, done.stderr
    assert "attempt 1 of 2): again in 1 s" in done.stderr, done.stderr
    assert "ERROR: npm ci (buf) failed 2 times" in done.stderr, done.stderr
    assert "could not install buf from npm (proto-schemas/package-lock.json)" in done.stderr
    assert not (repo / "proto-schemas" / "node_modules" / ".bin" / "buf").exists()
    assert took < 120, took

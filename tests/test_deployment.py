"""The compose stack, proved as far as this machine can (no Docker, no Grafana here).

compose.yaml follows the Compose specification (tests/test_project.py); here: every file
and variable it names exists, no secret is committed, Grafana's provisioning parses and
points at what exists, the broker the setup service provisions refuses strangers, and
the Dockerfile's build steps, run outside Docker, make a wheel that works.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from bench._servers import wait_for_port
from dashboards.catalog import FOLDER_UID, JSON_DIR
from dashboards.influxql import DATASOURCE_UID
from ingest.broker import free_port
from ingest.storage_setup import GRAFANA_TOKEN_FILE, INGEST_TOKEN_FILE
from processors.topics import TopicScheme

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = dict(
    line.split("=", 1)
    for line in (ROOT / ".env.example").read_text().splitlines()
    if line.strip() and not line.startswith("#")
)


def mounts(service: str) -> dict[str, str]:
    """Target path -> source (a repository path or a volume name) of a service's volumes."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        found[target] = source
    return found


def test_every_variable_compose_reads_is_in_env_example_and_back() -> None:
    text = (ROOT / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    assert used - set(ENV_EXAMPLE) == set(), "variables compose.yaml reads but .env.example does not list"
    assert set(ENV_EXAMPLE) - used == set(), ".env.example lists variables nothing reads"


def test_no_secret_is_committed() -> None:
    for name, value in ENV_EXAMPLE.items():
        if re.search(r"PASSWORD|TOKEN", name):
            assert value.startswith("change-me"), f"{name} in .env.example must be a placeholder"
    text = (ROOT / "compose.yaml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|TOKEN)\w*:\s", line) and "FILE" not in line:
            assert "${" in line, f"a secret must come from the environment: {line.strip()}"
    assert ".env" in (ROOT / ".dockerignore").read_text().split()
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env must be git-ignored"


def test_every_bind_mount_and_the_build_exist() -> None:
    for name, service in SERVICES.items():
        for target, source in mounts(name).items():
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repository"
            else:
                assert source in COMPOSE["volumes"], f"{name} mounts an undeclared volume {source}"
            assert target.startswith("/")
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").is_file()


def test_anonymous_access_is_off_and_every_secret_comes_from_the_environment_or_setup() -> None:
    grafana = SERVICES["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert ":?" in grafana["GF_SECURITY_ADMIN_PASSWORD"]
    assert ":?" in grafana["GF_SECURITY_SECRET_KEY"]
    ingest = SERVICES["ingest"]
    assert "@" in ingest["environment"]["CITYPULSE_MQTT_URL"]
    assert ":" not in ingest["environment"]["CITYPULSE_MQTT_URL"].split("//")[1].split("@")[0], "no password"
    secret = Path(ingest["environment"]["CITYPULSE_MQTT_PASSWORD_FILE"])
    assert mounts("ingest")[str(secret.parent.parent)] == "broker-files"
    assert ingest["read_only"] is True, "the ingest container's root filesystem is read-only"
    assert "expose" not in ingest, "/metrics and /health stay in the container"
    assert "ports" not in ingest
    assert "CITYPULSE_METRICS_HOST" not in (ROOT / "Dockerfile").read_text()


def test_grafana_provisioning_parses_and_names_what_exists() -> None:
    provisioning = ROOT / "deploy/grafana/provisioning"
    grafana = mounts("grafana")
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    source = yaml.safe_load((provisioning / "datasources/citypulse.yaml").read_text())["datasources"][0]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, "influxdb")
    assert source["jsonData"]["version"] == "InfluxQL"
    token = re.fullmatch(r"Token \$__file\{(.+)\}", source["secureJsonData"]["httpHeaderValue1"])
    assert token, "the read token is read from a file, never written here"
    token_dir, token_file = token.group(1).rsplit("/", 1)
    assert grafana[token_dir] == "influx-tokens", "the token file lives in the tokens volume"
    assert token_file == GRAFANA_TOKEN_FILE, "the file citypulse storage setup --tokens-dir writes"
    setup = SERVICES["setup"]
    assert f"--tokens-dir {token_dir}" in " ".join(setup["command"])
    assert mounts("setup")[token_dir] == "influx-tokens", "setup writes where Grafana reads"
    assert "setup" in SERVICES["grafana"]["depends_on"]
    for variable in re.findall(r"\$\{(\w+)\}", (provisioning / "datasources/citypulse.yaml").read_text()):
        assert variable in SERVICES["grafana"]["environment"], f"{variable} is not in Grafana's environment"
    host = re.match(r"http://([^:/]+):8086", source["url"])
    assert host
    assert host.group(1) in SERVICES
    provider = yaml.safe_load((provisioning / "dashboards/citypulse.yaml").read_text())["providers"][0]
    assert provider["folderUid"] == FOLDER_UID
    assert grafana[provider["options"]["path"]] == "./" + str(JSON_DIR.relative_to(ROOT))
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (JSON_DIR / Path(home).name).is_file()


def test_scripts_are_valid_shell_and_the_ingest_entrypoint_reads_token_files(tmp_path: Path) -> None:
    for script in ("deploy/mosquitto/start.sh", "deploy/ingest/entrypoint.sh"):
        assert subprocess.run(["sh", "-n", str(ROOT / script)], check=False).returncode == 0, script
    token = tmp_path / "ingest.token"
    token.write_text("write-only-token\n")
    done = subprocess.run(
        ["sh", str(ROOT / "deploy/ingest/entrypoint.sh"), "sh", "-c", 'printf %s "$CITYPULSE_INFLUX_TOKEN"'],
        env={"PATH": os.environ["PATH"], "INFLUX_TOKEN_FILE": str(token)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, "write-only-token")
    missing = subprocess.run(
        ["sh", str(ROOT / "deploy/ingest/entrypoint.sh"), "true"],
        env={"PATH": os.environ["PATH"], "INFLUX_TOKEN_FILE": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2
    assert "did InfluxDB's first setup run?" in missing.stderr
    token_path = Path(SERVICES["ingest"]["environment"]["INFLUX_TOKEN_FILE"])
    assert mounts("ingest")[str(token_path.parent)] == "influx-tokens"
    assert token_path.name == INGEST_TOKEN_FILE


def _connect(
    port: int, user: str | None, password: str | None, context: ssl.SSLContext | None = None
) -> tuple[mqtt.Client, int]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{user}-{time.monotonic_ns()}")
    if user:
        client.username_pw_set(user, password)
    if context is not None:
        client.tls_set_context(context)
    result: dict[str, int] = {}

    def connected(c: mqtt.Client, u: object, f: object, reason: Any, p: object) -> None:
        result.setdefault("rc", reason.value)

    client.on_connect = connected
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + 10
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    return client, result.get("rc", -1)


def setup_commands() -> str:
    return " ".join(SERVICES["setup"]["command"])


def test_the_broker_setup_and_start_sh_make_a_broker_that_refuses_strangers_and_scopes_each_device(
    tmp_path: Path,
) -> None:
    """What the setup service runs (devices certs, devices provision) and deploy/mosquitto/start.sh,
    with Mosquitto itself: TLS and per-device secrets and ACLs, no anonymous access."""
    setup = setup_commands()
    for flag in ("--ingest-user ingest", "--operator health", "--broker-dir /mosquitto/data", "--tls-dir"):
        assert flag in setup, f"setup no longer provisions with {flag}"
    assert "citypulse devices certs --out /broker/tls" in setup
    assert mounts("setup")["/broker"] == mounts("mosquitto")["/citypulse-broker"] == "broker-files"
    registry = tmp_path / "devices.csv"
    run([sys.executable, "-m", "ingest.cli", "simulate", "--devices", "10", "--registry", str(registry),
         "--dry-run"])  # fmt: skip
    files, data = tmp_path / "broker", tmp_path / "data"
    data.mkdir()
    port, tls_port = free_port(), free_port()
    run([sys.executable, "-m", "ingest.cli", "devices", "certs", "--out", str(files / "tls"),
         "--server-name", "127.0.0.1"])  # fmt: skip
    root = ["--broker-user", "root"] if os.geteuid() == 0 else []  # a root tmp dir is closed to 'mosquitto'
    run([sys.executable, "-m", "ingest.cli", "devices", "provision", "--registry", str(registry),
         "--out", str(files), "--ingest-user", "ingest", "--operator", "health", "--broker-dir", str(data),
         "--broker-data", str(data), "--tls-dir", str(data / "tls"), "--bind", "127.0.0.1",
         "--port", str(port), "--tls-port", str(tls_port), *root])  # fmt: skip
    env = {**os.environ, "CITYPULSE_BROKER_FILES": str(files), "MOSQUITTO_DATA": str(data)}
    broker = subprocess.Popen(
        ["sh", str(ROOT / "deploy/mosquitto/start.sh")], env=env, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(tls_port)
        assert all(stat_mode(data / name) == 0o600 for name in ("passwd", "acl", "tls/server.key"))
        credentials = dict(
            line.split(",")[::2] for line in (files / "credentials.csv").read_text().splitlines()[1:]
        )
        context = ssl.create_default_context(cafile=str(files / "tls" / "ca.crt"))
        stranger, rc = _connect(tls_port, None, None, context)
        stranger.loop_stop()
        assert rc != 0, "anonymous clients are refused"
        health, rc = _connect(tls_port, "health", (files / "secrets" / "health").read_text().strip(), context)
        health.loop_stop()
        health.disconnect()
        assert rc == 0, "the health check's account connects"
        device = next(name for name in credentials if name.startswith("air-"))
        ok, rc = _connect(tls_port, device, credentials[device], context)
        assert rc == 0
        assert ok.publish(TopicScheme().reading("air", device), b"{}", qos=1).rc == 0
        ok.loop_stop()
        ok.disconnect()
    finally:
        broker.terminate()
        broker.wait(10)


def run(args: list[str]) -> None:
    done = subprocess.run(args, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _dockerfile_runs() -> list[str]:
    return [
        line[len("RUN ") :]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN ")
    ]


def test_dockerfile_runs_as_a_user_with_a_health_check_on_the_health_endpoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER citypulse$", text, flags=re.M)
    assert "useradd --system --uid 10001" in text
    assert re.search(r"^HEALTHCHECK .*\n.*127\.0\.0\.1:9108/health", text, flags=re.M)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which is not in the repository"


@pytest.mark.slow
def test_dockerfile_build_steps_make_a_working_wheel_outside_docker(tmp_path: Path) -> None:
    """The build stage's RUN, as written, in a copy of what it COPYs; then the wheel installed into a fresh
    venv (its dependencies taken from this environment instead of downloaded) and run from there."""
    context = tmp_path / "src"
    context.mkdir()
    for line in (ROOT / "Dockerfile").read_text().split("FROM python:3.11-slim\n")[0].splitlines():
        if line.startswith("COPY "):
            *sources, _ = line[len("COPY ") :].split()
            for source in sources:
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(ROOT / source, context / source)
    build = next(run for run in _dockerfile_runs() if "pip wheel" in run)
    install = next(run for run in _dockerfile_runs() if "pip install" in run)
    wheels = tmp_path / "wheels"
    command = build.replace("/wheels", str(wheels)).replace("python -m pip", f"{sys.executable} -m pip")
    done = subprocess.run(command, shell=True, cwd=context, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    built = list(wheels.glob("citypulse-*.whl"))
    assert len(built) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(built[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "pip install --no-cache-dir /wheels/*.whl" in install
    clean = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    for args in (["--help"], ["dashboards", "build", "--check"], ["storage", "setup", "--help"]):
        run = subprocess.run(
            [str(env_dir / "bin" / "citypulse"), *args],
            cwd=tmp_path, env=clean, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
    where = subprocess.run(
        [str(python), "-c", "import dashboards.catalog as c; print(c.JSON_DIR)"],
        cwd=tmp_path, env=clean, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(env_dir)), "the installed wheel, not the source tree, ran"

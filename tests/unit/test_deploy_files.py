"""What can be checked of deploy/ without Docker or a cluster: structure, limits, schemas, units.

Compose and the manifests are parsed with PyYAML; the Kubernetes objects are validated against
the Kubernetes JSON schemas bundled in ``kubernetes-validate`` (offline); the systemd units go
through ``systemd-analyze verify``.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from schema.broker import BrokerKind, broker_kind
from schema.message import QUEUE
from schema.settings import DEFAULT_STEP_TIME_LIMIT_S

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker" / "compose.yaml"
COMPOSE_RABBITMQ = DEPLOY / "docker" / "compose.rabbitmq.yaml"
K8S_FILES = sorted((DEPLOY / "k8s").rglob("*.yaml"))
UNITS = sorted((DEPLOY / "systemd").glob("videofleet-*"))
KUBERNETES_VERSION = "1.30.0"
# Kinds from CRDs, which the bundled Kubernetes schemas do not describe; checked by hand below.
CUSTOM_KINDS = frozenset({"ScaledObject"})
COMPOSE_APP_SERVICES = ("producer", "worker", "recover", "flower")


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in K8S_FILES
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def _by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in _manifests() if d["kind"] == kind}


def _seconds(duration: str) -> int:
    """A compose duration such as ``360s``, ``6m`` or ``1m30s``."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert duration, "empty duration"
    assert parts, f"not a duration: {duration!r}"
    h, m, s = (int(p or 0) for p in parts.groups())
    return h * 3600 + m * 60 + s


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_compose_runs_every_process_after_a_one_shot_migration() -> None:
    services = _compose()["services"]
    assert set(services) == {"redis", "postgres", "migrate", *COMPOSE_APP_SERVICES}
    assert services["migrate"]["command"] == ["videofleet", "migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in COMPOSE_APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
    for name in ("redis", "postgres", "producer", "worker", "flower"):
        assert services[name]["healthcheck"]["test"], name
    assert services["worker"]["command"][:6] == ["celery", "-A", "workers", "worker", "-Q", QUEUE]
    assert services["producer"]["command"][:2] == ["videofleet", "serve"]
    assert services["flower"]["command"][:2] == ["videofleet", "flower"]
    assert "videofleet recover" in " ".join(services["recover"]["command"])


def test_compose_redis_never_evicts_keys() -> None:
    command = _compose()["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_compose_worker_grace_period_outlasts_the_longest_step() -> None:
    worker = _compose()["services"]["worker"]
    assert worker.get("stop_signal", "SIGTERM") == "SIGTERM"
    assert _seconds(worker["stop_grace_period"]) > DEFAULT_STEP_TIME_LIMIT_S


def test_compose_flower_requires_credentials_and_keeps_its_state_on_a_volume() -> None:
    flower = _compose()["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    state_dir = flower["command"][flower["command"].index("--db") + 1].rsplit("/", 1)[0]
    assert any(v.endswith(f":{state_dir}") for v in flower["volumes"])


def test_compose_rabbitmq_override_moves_every_process_to_a_healthy_rabbitmq() -> None:
    base = _compose()["services"]
    override = yaml.safe_load(COMPOSE_RABBITMQ.read_text())["services"]
    assert set(override) == {"rabbitmq", "migrate", *COMPOSE_APP_SERVICES}
    assert override["rabbitmq"]["healthcheck"]["test"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in override["rabbitmq"]["volumes"])
    for name in ("migrate", *COMPOSE_APP_SERVICES):
        env = override[name]["environment"]
        assert broker_kind(env["BROKER_URL"]) is BrokerKind.RABBITMQ, name
        # The upload API's rate limits stay on the base file's Redis.
        assert env["RATE_LIMIT_REDIS_URL"].startswith("redis://redis:"), name
        assert "redis" in base
    for name in COMPOSE_APP_SERVICES:
        depends = override[name]["depends_on"]
        assert depends["rabbitmq"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_every_required_compose_variable_is_documented_in_env_example() -> None:
    text = COMPOSE.read_text() + COMPOSE_RABBITMQ.read_text()
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    documented = set(
        re.findall(r"^#?\s*([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert required, "compose.yaml should fail fast on missing variables"
    assert required <= documented, f"undocumented: {sorted(required - documented)}"


def test_dockerfile_installs_ffmpeg_and_the_project_and_runs_as_a_user() -> None:
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.MULTILINE)
    assert re.search(r"apt-get install .*ffmpeg", text)
    assert "pip install ." in text
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys()
        assert doc["metadata"]["name"].startswith("videofleet")
        if doc["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_worker_deployment_grace_period_outlasts_the_longest_step() -> None:
    worker = _by_kind("Deployment")["videofleet-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > DEFAULT_STEP_TIME_LIMIT_S
    config = _by_kind("ConfigMap")["videofleet-config"]["data"]
    assert worker["terminationGracePeriodSeconds"] > int(config["STEP_TIME_LIMIT_S"])
    [container] = worker["containers"]
    assert container["command"][:6] == ["celery", "-A", "workers", "worker", "-Q", QUEUE]


def test_keda_and_hpa_both_scale_the_worker_deployment() -> None:
    scaled = _by_kind("ScaledObject")
    keda, keda_rabbitmq = scaled["videofleet-worker"], scaled["videofleet-worker-rabbitmq"]
    [hpa] = _by_kind("HorizontalPodAutoscaler").values()
    deployments = _by_kind("Deployment")
    for scaler in (keda, keda_rabbitmq, hpa):
        target = scaler["spec"]["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", "videofleet-worker")
        assert target["name"] in deployments
    assert keda["apiVersion"] == "keda.sh/v1alpha1"
    [trigger] = keda["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"]["listName"] == QUEUE
    assert int(trigger["metadata"]["listLength"]) > 0
    config = _by_kind("ConfigMap")["videofleet-config"]["data"]
    assert trigger["metadata"]["addressFromEnv"] in config
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    [trigger] = keda_rabbitmq["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert (trigger["metadata"]["queueName"], trigger["metadata"]["mode"]) == (QUEUE, "QueueLength")
    assert int(trigger["metadata"]["value"]) > 0
    # KEDA reads the amqp:// URL from the worker container's own BROKER_URL.
    assert trigger["metadata"]["hostFromEnv"] == "BROKER_URL"


def test_manifests_reference_only_the_config_and_secret_they_define() -> None:
    config = _by_kind("ConfigMap")["videofleet-config"]["data"]
    secret = _by_kind("Secret")["videofleet-secrets"]["stringData"]
    text = "\n".join(p.read_text() for p in K8S_FILES)
    assert set(re.findall(r"configMapRef: \{name: ([\w-]+)\}", text)) == {"videofleet-config"}
    assert set(re.findall(r"secretRef: \{name: ([\w-]+)\}", text)) == {"videofleet-secrets"}
    for key in re.findall(r"configMapKeyRef: \{name: videofleet-config, key: (\w+)\}", text):
        assert key in config
    for key in re.findall(r"secretKeyRef: \{name: videofleet-secrets, key: (\w+)\}", text):
        assert key in secret
    assert "FLOWER_BASIC_AUTH" in secret


def test_flower_runs_authenticated_with_one_writer_of_its_state() -> None:
    flower = _by_kind("Deployment")["videofleet-flower"]
    assert flower["spec"]["replicas"] == 1
    assert flower["spec"]["strategy"]["type"] == "Recreate"
    [container] = flower["spec"]["template"]["spec"]["containers"]
    assert "--unauthenticated" not in container["command"]
    assert {e["name"] for e in container["env"]} >= {"FLOWER_BASIC_AUTH", "BROKER_URL"}
    assert _by_kind("Service")["videofleet-flower"]["spec"]["type"] == "ClusterIP"


def test_migration_job_and_the_long_running_recovery_loop_run_the_cli() -> None:
    job = _by_kind("Job")["videofleet-migrate"]["spec"]["template"]["spec"]
    assert job["containers"][0]["command"] == ["videofleet", "migrate"]
    recover = _by_kind("Deployment")["videofleet-recover"]["spec"]
    assert recover["replicas"] == 1
    assert recover["template"]["spec"]["containers"][0]["command"] == ["videofleet", "recover"]


def test_systemd_units_stop_gently_and_the_worker_outlasts_the_longest_step() -> None:
    services = {p.name: _unit(p) for p in UNITS if p.suffix == ".service"}
    assert set(services) == {
        "videofleet-producer.service",
        "videofleet-worker@.service",
        "videofleet-flower.service",
        "videofleet-recover.service",
    }
    for name, unit in services.items():
        assert unit["Service"]["KillMode"] == "mixed", name
        assert unit["Service"]["User"] == "videofleet", name
    worker = services["videofleet-worker@.service"]["Service"]
    assert int(worker["TimeoutStopSec"]) > DEFAULT_STEP_TIME_LIMIT_S
    assert f"worker -Q {QUEUE}" in worker["ExecStart"]
    producer = services["videofleet-producer.service"]["Service"]
    assert producer["ExecStartPre"].endswith("videofleet migrate")
    recover = services["videofleet-recover.service"]["Service"]
    assert recover["ExecStart"].endswith("videofleet recover")
    assert recover["Restart"] == "always"


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # given the units with their programs pointing at this checkout's virtualenv
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install systemd (make services does it)")
    venv_bin = f"{Path(sys.executable).parent}/"
    for unit in UNITS:
        text = unit.read_text().replace("/opt/videofleet/.venv/bin/", venv_bin)
        name = unit.name.replace("@.service", "@1.service")
        (tmp_path / name).write_text(text)
    # when systemd checks them
    result = subprocess.run(
        [analyze, "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        check=False,
    )
    # then it finds nothing to say: no unknown key, no bad value, every program exists
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr

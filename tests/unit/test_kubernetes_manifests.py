"""The Kubernetes manifests (deploy/kubernetes), checked offline: every object against the pinned
Kubernetes version's schemas (kubernetes-validate, strict), the KEDA objects against the schemas in
deploy/kubernetes/schemas, and the whole against docker-compose.yml (same images, commands, env)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from modelpress_core.queue import QUEUES
from tests.kustomize import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE, EXTERNAL_REDIS = K8S / "base", K8S / "overlays" / "external-redis"
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to work on
KEDA_SCHEMAS = {
    "ScaledObject": K8S / "schemas" / "keda-scaledobject-v1alpha1.json",
    "TriggerAuthentication": K8S / "schemas" / "keda-triggerauthentication-v1alpha1.json",
}
# Secrets the operator creates (docs/deployment.md) and the keys the manifests read from them.
REQUIRED_SECRETS = {"modelpress-redis": {"url", "address", "password"}, "modelpress-s3": None, "modelpress-flower": {"basic-auth"}}

try:
    import kubernetes_validate
except ImportError:  # the dev extra installs it; CI must run these checks, never skip them
    if os.environ.get("CI"):
        raise
    kubernetes_validate = None


def identity(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def by_kind_and_name(objects: list[dict]) -> dict[tuple[str, str], dict]:
    return {identity(obj): obj for obj in objects}


def container(objects, kind, name) -> dict:
    (only,) = by_kind_and_name(objects)[(kind, name)]["spec"]["template"]["spec"]["containers"]
    return only


def env_names(objects, kind, name) -> set[str]:
    c = container(objects, kind, name)
    names = {e["name"] for e in c.get("env", [])}
    config = by_kind_and_name(objects)[("ConfigMap", "modelpress-config")]["data"]
    for source in c.get("envFrom", []):
        if source.get("configMapRef", {}).get("name") == "modelpress-config":
            names |= set(config)
    return names


def secret_refs(obj) -> list[tuple[str, str | None, bool]]:
    """(secret name, key or None for a whole-Secret envFrom, optional?) everywhere in an object."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                ref = node["secretKeyRef"]
                found.append((ref["name"], ref["key"], bool(ref.get("optional"))))
            if "secretRef" in node:
                found.append((node["secretRef"]["name"], None, bool(node["secretRef"].get("optional"))))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(obj)
    return found


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return render(BASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.mark.parametrize("directory", [BASE, EXTERNAL_REDIS], ids=["base", "external-redis"])
def test_every_object_validates_offline(directory):
    if kubernetes_validate is None:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')")
    objects = render(directory)
    assert objects
    checked = []
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            schema = json.loads(KEDA_SCHEMAS[obj["kind"]].read_text())
            jsonschema.Draft202012Validator.check_schema(schema)
            jsonschema.Draft202012Validator(schema).validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        checked.append(obj["kind"])
    assert {"Deployment", "Service", "ConfigMap", "ScaledObject", "TriggerAuthentication"} <= set(checked)


def test_the_validators_catch_mistakes(base):
    """The checks above can fail: a misspelt field and a redis trigger without its list are refused."""
    if kubernetes_validate is None:
        pytest.skip("kubernetes-validate is not installed (pip install -e '.[dev]')")
    deployment = json.loads(json.dumps(by_kind_and_name(base)[("Deployment", "api")]))
    deployment["spec"]["template"]["spec"]["containers"][0]["comand"] = ["uvicorn"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    scaled = json.loads(json.dumps(by_kind_and_name(base)[("ScaledObject", "worker-cpu")]))
    del scaled["spec"]["triggers"][0]["metadata"]["listName"]
    schema = json.loads(KEDA_SCHEMAS["ScaledObject"].read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(scaled)


@pytest.mark.parametrize("directory", [BASE, EXTERNAL_REDIS], ids=["base", "external-redis"])
def test_the_renderer_agrees_with_kubectl_kustomize_where_installed(directory):
    objects = render(directory)
    kubectl = shutil.which("kubectl")
    if kubectl is None:  # the pure-Python render above is what CI checks; nothing to compare against here
        assert all("kind" in obj for obj in objects)
        return
    out = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True).stdout
    expected = [doc for doc in yaml.safe_load_all(out) if doc]
    assert sorted(objects, key=identity) == sorted(expected, key=identity)


def test_same_images_and_commands_as_compose(base, compose):
    for name in ("api", "worker-cpu", "worker-gpu", "flower"):
        c = container(base, "Deployment", name)
        assert c["image"] == compose[name]["image"], name
        assert c["command"] == compose[name]["command"], name
    redis = container(base, "StatefulSet", "redis")
    assert redis["image"] == compose["redis"]["image"]
    # compose interpolates ${REDIS_PASSWORD:?...}; Kubernetes expands $(REDIS_PASSWORD) from the container's env
    assert [re.sub(r"\$\{REDIS_PASSWORD[^}]*\}", "$(REDIS_PASSWORD)", arg) for arg in compose["redis"]["command"]] == redis["command"]
    assert {"--appendonly", "yes"} <= set(redis["command"])


def test_same_environment_as_compose(base, compose):
    """Every variable compose gives a service reaches the same workload, except the documented differences."""
    # AWS_* come whole from the Secret modelpress-s3 (envFrom); the S3 endpoint, region and public URL
    # are optional and left to the operator's ConfigMap (docs/deployment.md says so).
    from_secret_or_optional = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MODELPRESS_S3_ENDPOINT_URL",
                               "MODELPRESS_S3_REGION", "MODELPRESS_PUBLIC_URL"}
    for name, kind in (("api", "Deployment"), ("worker-cpu", "Deployment"), ("worker-gpu", "Deployment"),
                       ("flower", "Deployment")):
        wanted = set(compose[name]["environment"]) - from_secret_or_optional
        missing = wanted - env_names(base, kind, name)
        assert not missing, f"{name}: compose sets {sorted(missing)}, the manifest does not"
    for name in ("api", "worker-cpu", "worker-gpu"):
        refs = {secret for secret, key, _ in secret_refs(container(base, "Deployment", name)) if key is None}
        assert "modelpress-s3" in refs, f"{name} needs the S3 credentials"


def test_secrets_are_required_and_never_committed(base):
    assert not [obj for obj in base if obj["kind"] == "Secret"], "secrets are created by the operator, not committed"
    used: dict[str, set] = {}
    for obj in base:
        for secret, key, optional in secret_refs(obj):
            assert not optional, f"{obj['kind']}/{obj['metadata']['name']}: {secret} must be required"
            assert secret in REQUIRED_SECRETS, f"undocumented secret {secret}"
            used.setdefault(secret, set()).add(key)
        if obj["kind"] == "TriggerAuthentication":
            for ref in obj["spec"]["secretTargetRef"]:
                used.setdefault(ref["name"], set()).add(ref["key"])
    assert set(used) == set(REQUIRED_SECRETS)
    for secret, keys in REQUIRED_SECRETS.items():
        if keys is not None:
            assert used[secret] - {None} == keys, secret
    config = by_kind_and_name(base)[("ConfigMap", "modelpress-config")]["data"]
    for key, value in config.items():
        assert not re.search(r"PASSWORD|SECRET|TOKEN|BASIC_AUTH|ACCESS_KEY|REDIS_URL", key), f"{key} belongs in a Secret"
        assert "@" not in str(value), f"{key} looks like a URL with credentials"
    assert config["MODELPRESS_AUTH"] == "required"


def test_queues_autoscaling_and_gpu(base):
    objects = by_kind_and_name(base)
    cpu, gpu = container(base, "Deployment", "worker-cpu"), container(base, "Deployment", "worker-gpu")
    assert cpu["command"][cpu["command"].index("-Q") + 1] == QUEUES["cpu"]
    assert gpu["command"][gpu["command"].index("-Q") + 1] == QUEUES["cuda"]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1 and "nvidia.com/gpu" not in cpu["resources"].get("limits", {})
    assert gpu["command"][gpu["command"].index("--pool") + 1] == "solo"
    scaled = objects[("ScaledObject", "worker-cpu")]["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker-cpu"}
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUES["cpu"]
    assert ("TriggerAuthentication", trigger["authenticationRef"]["name"]) in objects
    # uploads are checked by a live worker and the sweeper runs in workers: never scale to zero
    assert scaled["minReplicaCount"] >= 1
    config = objects[("ConfigMap", "modelpress-config")]["data"]
    assert config["MODELPRESS_ARTIFACT_STORE"] == "s3" and config["MODELPRESS_S3_BUCKET"]
    redis = objects[("StatefulSet", "redis")]["spec"]
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_external_redis_overlay_drops_only_redis(base):
    overlay = by_kind_and_name(render(EXTERNAL_REDIS))
    removed = set(by_kind_and_name(base)) - set(overlay)
    assert removed == {("StatefulSet", "redis"), ("Service", "redis")}
    assert container(list(overlay.values()), "Deployment", "api")["env"][0]["valueFrom"]["secretKeyRef"] == {
        "name": "modelpress-redis", "key": "url"}

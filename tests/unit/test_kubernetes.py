"""deploy/kubernetes: valid against Kubernetes' own schemas (offline, strict), and consistent
with the service it runs: probes, port, settings, the key's file, the shutdown bound."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from classifier.settings import Settings
from tests import ROOT

DEPLOY = ROOT / "deploy" / "kubernetes"
# the oldest release the manifests are checked against (preStop `sleep` is on by default since 1.30)
KUBERNETES = "1.33.0"
MANIFESTS = sorted(path for path in DEPLOY.glob("*.yaml") if path.name != "kustomization.yaml")


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_manifest_is_valid_kubernetes(path):
    for document in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(document, KUBERNETES, strict=True)


def test_strict_validation_catches_a_misspelt_field():
    deployment = load("deployment.yaml")
    deployment["spec"]["replicaz"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_kustomization_applies_everything_but_the_example_secret():
    resources = set(load("kustomization.yaml")["resources"])
    assert resources == {path.name for path in MANIFESTS} - {"secret.example.yaml"}


def container() -> dict:
    [only] = load("deployment.yaml")["spec"]["template"]["spec"]["containers"]
    return only


def test_probes_and_port_are_the_service_s():
    spec = container()
    assert spec["ports"][0]["containerPort"] == 3000  # bentoml serve's default
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_every_setting_exists_and_the_key_file_is_the_mounted_secret():
    env = {item["name"]: item for item in container()["env"]}
    for name in env:
        assert name.startswith("CLASSIFIER_")
        assert name.removeprefix("CLASSIFIER_").lower() in Settings.model_fields, name
    key_file = env["CLASSIFIER_API_KEY_FILE"]["value"]
    mounts = {mount["name"]: mount["mountPath"] for mount in container()["volumeMounts"]}
    volumes = load("deployment.yaml")["spec"]["template"]["spec"]["volumes"]
    [secret] = [volume for volume in volumes if "secret" in volume]
    assert key_file.rsplit("/", 1)[0] == mounts[secret["name"]]
    example = load("secret.example.yaml")
    assert secret["secret"]["secretName"] == example["metadata"]["name"]
    assert key_file.rsplit("/", 1)[1] in example["stringData"]


def test_the_compile_cache_is_a_volume_and_startup_allows_compiling():
    spec = container()
    env = {item["name"]: item for item in spec["env"]}
    mounts = {mount["mountPath"] for mount in spec["volumeMounts"]}
    assert env["CLASSIFIER_COMPILE_CACHE_DIR"]["value"] in mounts
    # compiling with an empty cache takes about a minute and a half on 2 cores (BENCHMARKS.md)
    probe = spec["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 240


def test_grace_period_covers_the_service_s_shutdown():
    """preStop pause + the longest request (the request timeout) + time to exit."""
    pod = load("deployment.yaml")["spec"]["template"]["spec"]
    env = {item["name"]: item.get("value") for item in container()["env"]}
    timeout = float(env["CLASSIFIER_REQUEST_TIMEOUT_S"])
    pause = container()["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] >= pause + timeout + 5


def test_everything_selects_the_same_pods():
    labels = load("deployment.yaml")["spec"]["template"]["metadata"]["labels"]
    assert load("service.yaml")["spec"]["selector"].items() <= labels.items()
    assert load("pdb.yaml")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = load("hpa.yaml")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "image-classifier")

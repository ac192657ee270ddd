"""The copy of deploy/kubernetes that podman plays: valid, changed only where podman needs it."""

from __future__ import annotations

import copy

import kubernetes_validate
import yaml

from classifier.testing.kube_play import PROBES, Manifest, adapt, podman_secret
from tests.unit.test_kubernetes import KUBERNETES, load


def test_the_manifest_is_read_as_a_cluster_would_run_it():
    manifest = Manifest.read(load("deployment.yaml"))
    assert manifest.probe_paths == {
        "startupProbe": "/readyz",
        "readinessProbe": "/readyz",
        "livenessProbe": "/livez",
    }
    assert (manifest.user, manifest.grace_s, manifest.prestop_s) == (1034, 45, 5)
    assert manifest.secret == load("secret.example.yaml")["metadata"]["name"]
    assert manifest.container == "image-classifier-pod-0-image-classifier"
    # from resourceFieldRef: one thread per whole CPU requested
    assert manifest.environment["CLASSIFIER_THREADS"] == "2"
    assert manifest.environment["CLASSIFIER_REQUEST_TIMEOUT_S"] == "30"


def test_the_played_copy_differs_only_where_podman_needs_it():
    original = load("deployment.yaml")
    played = adapt(copy.deepcopy(original), "localhost/image-classifier:smoke", 18080)
    kubernetes_validate.validate(played, KUBERNETES, strict=True)
    container = played["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "localhost/image-classifier:smoke"
    assert container["ports"][0] == {
        "name": "http",
        "containerPort": 3000,
        "protocol": "TCP",
        "hostPort": 18080,
        "hostIP": "127.0.0.1",
    }
    assert played["spec"]["replicas"] == 1 and not set(PROBES) & set(container)
    # the rest as written: environment, user, volumes, resources, grace period
    unchanged = ("env", "resources", "volumeMounts", "securityContext", "lifecycle")
    original_container = original["spec"]["template"]["spec"]["containers"][0]
    assert {k: container[k] for k in unchanged} == {k: original_container[k] for k in unchanged}
    spec, original_spec = played["spec"]["template"]["spec"], original["spec"]["template"]["spec"]
    assert spec["securityContext"] == original_spec["securityContext"]
    assert spec["terminationGracePeriodSeconds"] == original_spec["terminationGracePeriodSeconds"]


def test_the_secret_carries_the_key_as_podman_43_reads_it():
    secret = podman_secret(load("secret.example.yaml"), "k3y")
    assert secret["data"] == {"api-key": "k3y"} and "stringData" not in secret
    assert yaml.safe_load(yaml.safe_dump(secret))["metadata"]["name"] == "image-classifier-api-key"

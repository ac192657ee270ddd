"""Play deploy/kubernetes with `podman kube play` and check the pod as a cluster would see it.

It must become ready through the manifest's own probe paths, run as its non-root user with the
environment it sets, take the API key from the Secret, and stop cleanly within the grace period
when it is stopped and taken down.

    python -m classifier.testing.kube_play localhost/image-classifier:smoke --photo photo.jpg

Podman is not Kubernetes: the copy it plays differs from deploy/kubernetes as `adapt` says, and
deploy/kubernetes/README.md lists what podman does not honour.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from classifier.testing.server import free_port

MANIFESTS = Path(__file__).parents[2] / "deploy" / "kubernetes"
READY_TIMEOUT_S = 300
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], check=check, capture_output=True, text=True)


def adapt(deployment: dict, image: str, port: int) -> dict:
    """The Deployment as podman 4.3 can play it: what differs from a cluster, and why."""
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["image"] = image
    # podman makes each replica a pod of its own, with no Service to spread requests over them
    deployment["spec"]["replicas"] = 1
    # no Service either: the container's port is published on loopback instead
    container["ports"][0].update(hostPort=port, hostIP="127.0.0.1")
    # podman runs httpGet probes as curl inside the container (the image has none) and sends
    # named ports as port 0: the probes' paths are polled from outside instead, as a kubelet does
    for probe in PROBES:
        container.pop(probe)
    for volume in pod["volumes"]:
        if "secret" in volume:
            volume["secret"]["optional"] = False  # podman 4.3 crashes when this is left out
    return deployment


def podman_secret(example: dict, key: str) -> dict:
    """The Secret from secret.example.yaml with a fresh key, as podman 4.3 reads it: it ignores
    stringData and writes data's values out as they are, without decoding base64."""
    secret = dict(example)
    secret["data"] = {name: key for name in secret.pop("stringData")}
    return secret


@dataclass(frozen=True)
class Manifest:
    """What deployment.yaml says the pod must do."""

    pod: str  # podman names a Deployment's first pod <name>-pod-0
    container: str  # and its container <pod>-<container>
    probe_paths: dict[str, str]
    user: int
    grace_s: int
    prestop_s: int  # the preStop pause before SIGTERM
    secret: str
    environment: dict[str, str]  # as the container should see it

    @classmethod
    def read(cls, deployment: dict) -> Manifest:
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        pod = f"{deployment['metadata']['name']}-pod-0"
        return cls(
            pod=pod,
            container=f"{pod}-{container['name']}",
            probe_paths={probe: container[probe]["httpGet"]["path"] for probe in PROBES},
            user=spec["securityContext"]["runAsUser"],
            grace_s=spec["terminationGracePeriodSeconds"],
            prestop_s=container["lifecycle"]["preStop"]["sleep"]["seconds"],
            secret=next(v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v),
            environment=environment(container),
        )


def deployment() -> dict:
    return yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())


def environment(container: dict) -> dict[str, str]:
    """The variables the manifest sets: values as written, resource fields (whole CPUs) as asked."""
    requests = container["resources"]["requests"]
    return {
        variable["name"]: variable["value"]
        if "value" in variable
        else str(requests[variable["valueFrom"]["resourceFieldRef"]["resource"].split(".")[1]])
        for variable in container["env"]
    }


def check(condition: bool, failure: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {failure}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image")
    parser.add_argument("--photo", type=Path, required=True, help="a JPEG to classify")
    parser.add_argument("--record", type=Path, help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    # stopped (Ctrl-C, kill): the pod and the secret are removed on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    written = deployment()
    manifest = Manifest.read(written)
    port = free_port()
    key = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory() as work:
        played = Path(work, "deployment.yaml")
        played.write_text(yaml.safe_dump(adapt(written, args.image, port)))
        secret = Path(work, "secret.yaml")
        example = yaml.safe_load((MANIFESTS / "secret.example.yaml").read_text())
        secret.write_text(yaml.safe_dump(podman_secret(example, key)))
        # an earlier run's: podman keeps a Secret's files in a volume of the same name
        podman("kube", "down", str(played), check=False)
        forget_secret(manifest.secret)
        try:
            podman("secret", "create", manifest.secret, str(secret))
            started = time.monotonic()
            podman("kube", "play", str(played))
            ready_s = wait_ready(f"http://127.0.0.1:{port}", manifest.probe_paths, started)
            check_serving(f"http://127.0.0.1:{port}", manifest, key, args.photo.read_bytes())
            stop_s, exit_code = stop(played, manifest)
        except BaseException as error:
            if isinstance(error, subprocess.CalledProcessError):
                print(error.stderr, file=sys.stderr)
            logs = podman("logs", "--tail", "40", manifest.container, check=False)
            print(logs.stdout, logs.stderr, file=sys.stderr)
            podman("kube", "down", str(played), check=False)
            raise
        finally:
            forget_secret(manifest.secret)
    check(exit_code == "0", f"exit code {exit_code!r} after podman kube down (SIGKILL: 137)")
    check(stop_s < manifest.grace_s, f"took {stop_s:.1f} s to stop: over the grace period")
    print(
        f"    podman kube down: exit code 0 in {stop_s:.1f} s (grace period {manifest.grace_s} s)"
    )
    if args.record:
        args.record.write_text(
            json.dumps({"ready_s": round(ready_s, 1), "stop_s": round(stop_s, 1)})
        )


def forget_secret(name: str) -> None:
    podman("volume", "rm", "--force", name, check=False)
    podman("secret", "rm", name, check=False)


def check_serving(url: str, manifest: Manifest, key: str, jpeg: bytes) -> None:
    uid = podman("exec", manifest.container, "id", "-u").stdout.strip()
    check(uid == str(manifest.user), f"runs as user {uid}, not the manifest's {manifest.user}")
    print(f"    runs as user {uid}, the manifest's runAsUser")
    lines = podman("exec", manifest.container, "env").stdout.splitlines()
    seen = dict(line.split("=", 1) for line in lines if "=" in line)
    wrong = {k: seen.get(k) for k, v in manifest.environment.items() if seen.get(k) != v}
    check(not wrong, f"environment differs from the manifest's: {wrong}")
    print(f"    its environment is the manifest's: {manifest.environment}")
    photo = {"image": ("photo.jpg", jpeg)}
    keyed = httpx.post(f"{url}/predict", files=photo, headers={"Authorization": f"Bearer {key}"})
    check(keyed.status_code == 200, f"with the Secret's key: {keyed.status_code} {keyed.text}")
    print(f"    with the Secret's key: 200, {keyed.json()['predictions'][0]}")
    keyless = httpx.post(f"{url}/predict", files=photo)
    check(keyless.status_code == 401, f"without a key: {keyless.status_code} {keyless.text}")
    print(f"    without it: 401 {keyless.json()}")


def stop(played: Path, manifest: Manifest) -> tuple[float, str]:
    """Seconds `podman kube down` took, and the container's exit code."""
    # kube down removes the container: its exit code is read as it happens
    waiting = subprocess.Popen(
        ["podman", "wait", manifest.container], stdout=subprocess.PIPE, text=True
    )
    time.sleep(1)
    stopping = time.monotonic()
    # podman before 5.1 sends SIGKILL at once on kube down (containers/podman#22397): the pod is
    # stopped first, with SIGTERM and the grace period, as the fix does
    podman("pod", "stop", "--time", str(manifest.grace_s), manifest.pod)
    podman("kube", "down", str(played))
    stop_s = time.monotonic() - stopping
    return stop_s, waiting.communicate(timeout=60)[0].strip()


def wait_ready(url: str, paths: dict[str, str], started: float) -> float:
    """Seconds until the startup probe's path answers 200; then the others must too."""
    # one client for every poll: each of httpx.get's own costs 54 ms of CPU (its CA bundle)
    with httpx.Client(timeout=5) as poller:
        while time.monotonic() - started < READY_TIMEOUT_S:
            try:
                if poller.get(url + paths["startupProbe"]).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            check(False, f"{paths['startupProbe']} did not answer 200 in {READY_TIMEOUT_S} s")
        ready_s = time.monotonic() - started
        for probe, path in paths.items():
            status = poller.get(url + path).status_code
            check(status == 200, f"{probe} {path}: {status}")
    print(f"    ready in {ready_s:.1f} s; " + ", ".join(f"{p} {path}" for p, path in paths.items()))
    return ready_s


if __name__ == "__main__":
    main()

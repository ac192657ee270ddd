#!/usr/bin/env bash
# Build the service's OCI image and prove it works, with no Docker engine and no registry:
#   bash scripts/container-smoke.sh          (as root; about 6 minutes, more the first time)
# Installs podman, buildah, runc and debootstrap from Debian if missing; makes the local base image
# (scripts/base-image.sh); `bentoml build`s a Bento pointed at it, with a small random-weights model
# in a private store (CLASSIFIER_MODEL_TAG and BENTOML_HOME: use yours instead); `bentoml
# containerize`s it with buildah; runs it with podman on loopback; checks a photo is classified,
# a bad file gets a 4xx, it starts and serves with no network at all, SIGTERM stops it cleanly
# in time, and deploy/kubernetes runs under `podman kube play` (classifier/testing/kube_play.py).
# No settings needed behind a TLS-intercepting proxy: the build borrows this machine's CAs
# (scripts/containerize.sh) and a check shows the image does not keep them. Writes the image's
# size and contents (bench/image_contents.py), build, start and stop times to
# bench/KIND/container.json (BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "==> $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
seconds() { date +%s.%N; }
elapsed() { python3 -c "print(round($(seconds) - $1, 1))"; }

if ! command -v podman > /dev/null || ! command -v buildah > /dev/null || ! command -v debootstrap > /dev/null; then
  say "installing podman, buildah, runc, debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get update -q > /dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman buildah runc debootstrap > /dev/null
fi
if [ ! -s /etc/containers/containers.conf ] || ! grep -q 'runtime = "runc"' /etc/containers/containers.conf; then
  # crun fails on hosts with a hybrid cgroup layout; podman's default ulimits exceed some hosts'
  say "configuring podman: runc, ulimits within the host's"
  mkdir -p /etc/containers
  cat > /etc/containers/containers.conf << CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]

[engine]
runtime = "runc"
CONF
fi

source scripts/setup.sh requirements-dev.txt
BASE=localhost/image-classifier-base:bookworm
trusts=$(podman image inspect "$BASE" --format '{{index .Labels "image-classifier.extra-ca-certs"}}' 2> /dev/null || true)
if [ "$trusts" != "$(bash scripts/base-image.sh --label)" ]; then
  started=$(seconds)
  IMAGE=$BASE bash scripts/base-image.sh
  say "base image in $(elapsed "$started") s"
fi

work=$(mktemp -d)
trap 'podman rm -f --ignore classifier-smoke classifier-offline > /dev/null 2>&1 || true; rm -rf "$work"' EXIT
if [ -z "${CLASSIFIER_MODEL_TAG:-}" ]; then
  export BENTOML_HOME=$work/bentoml
  CLASSIFIER_MODEL_TAG=$(bash scripts/random-model.sh)
  export CLASSIFIER_MODEL_TAG
fi
say "model $CLASSIFIER_MODEL_TAG"

# the project's bentofile, with the local base image instead of python:3.11-slim from a registry
sed -e "s|^docker:$|docker:\n  base_image: \"$BASE\"|" -e '/^  python_version:/d' bentofile.yaml > "$work/bentofile.yaml"
bento=$(bentoml build -f "$work/bentofile.yaml" --output tag . | tail -n 1 | sed 's/^__tag__://')
say "built $bento"
image=localhost/image-classifier:smoke
podman rmi --force --ignore "$image" > /dev/null  # an earlier run's: several GB
started=$(seconds)
bash scripts/containerize.sh "$bento" "$image" > "$work/containerize.log" 2>&1 || {
  tail -n 40 "$work/containerize.log"; fail "bentoml containerize"; }
build_s=$(elapsed "$started")
# the build borrowed this machine's CAs; the image trusts only its own, or EXTRA_CA_CERTS too
if [ -n "${EXTRA_CA_CERTS:-}" ]; then trust=(--certificates "$EXTRA_CA_CERTS" --expect present); else trust=(); fi
python -m classifier.testing.trust_store "$image" "${trust[@]}" || fail "the image's trust store"
size=$(podman image inspect "$image" --format '{{.Size}}')
say "image $image: $((size / 1000000)) MB, built in $build_s s"
removed=$(sed -n 's/.*image-cleanup: removed \([0-9]*\) MB.*/\1/p' "$work/containerize.log" | tail -n 1)
[ -n "$removed" ] || fail "scripts/image-cleanup.sh did not run in the build"
say "scripts/image-cleanup.sh removed $removed MB"
python -m bench.image_contents "$image" > "$work/contents.json"

# the compiled model's cache on a volume, empty now: the second container below starts warm
cache=$work/compile-cache
mkdir -p "$cache" && chown 1034:1034 "$cache"  # the user BentoML's image runs as
volume=(-v "$cache:/compile-cache" -e CLASSIFIER_COMPILE_CACHE_DIR=/compile-cache)
port=$(python -c "from classifier.testing.server import free_port; print(free_port())")
started=$(seconds)
podman run -d --name classifier-smoke -p "127.0.0.1:$port:3000" "${volume[@]}" "$image" > /dev/null
url=http://127.0.0.1:$port
for _ in $(seq 480); do curl -sf "$url/readyz" > /dev/null && break; sleep 0.5; done
curl -sf "$url/readyz" > /dev/null || { podman logs classifier-smoke | tail -n 40; fail "not ready in 240 s"; }
ready_s=$(elapsed "$started")
say "ready in $ready_s s (the eager model; compiling in the background, with an empty cache)"
# ready to answer is not yet compiled: the compiled model takes over once its graphs are made
compiling() { curl -sf "$url/info" | python -c "import json, sys; sys.exit(not json.load(sys.stdin)['compile']['compiling'])"; }
for _ in $(seq 1200); do compiling || break; sleep 0.5; done
compiled_s=$(elapsed "$started")
curl -sf "$url/info" | python -c "
import json, sys
compiled = json.load(sys.stdin)['compile']
assert compiled['compiled'], f'the image serves the eager model: {compiled[\"reason\"]}'
print('    compiled:', compiled['batch_sizes'], 'in', compiled['seconds'], 's')" \
  || fail "the compiled model is not served"
say "the compiled model is served, $compiled_s s after start"

python -c "from tests import images; open('$work/photo.jpg', 'wb').write(images.jpeg())"
curl -sf -F "image=@$work/photo.jpg" "$url/predict" | python -c "
import json, sys
answer = json.load(sys.stdin)
assert answer['model'] == '$CLASSIFIER_MODEL_TAG' and answer['predictions'], answer
print('    photo:', answer['predictions'][0])"
curl -sf "$url/ui/" | grep -q 'src="app.js"' || fail "the web page is not at /ui/"
say "the web page is at /ui/"
echo "not an image" > "$work/bad.jpg"
status=$(curl -s -o "$work/bad.json" -w '%{http_code}' -F "image=@$work/bad.jpg" "$url/predict")
[ "$status" = 415 ] && grep -q '"error"' "$work/bad.json" || fail "a bad file got $status: $(cat "$work/bad.json")"
say "a bad file gets $status: $(cat "$work/bad.json")"

started=$(seconds)
podman stop -t 60 classifier-smoke > /dev/null
stop_s=$(elapsed "$started")
code=$(podman inspect classifier-smoke --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || { podman logs classifier-smoke | tail -n 40; fail "exit code $code after SIGTERM"; }
python -c "assert $stop_s < 30, 'took $stop_s s to stop'"
say "SIGTERM: exit code 0 in $stop_s s"
podman rm classifier-smoke > /dev/null

# no network at all: nothing may be downloaded at start, and it must still serve; the compile
# cache the first container filled makes this start warm
started=$(seconds)
podman run -d --name classifier-offline --network none "${volume[@]}" "$image" > /dev/null
probe="import urllib.request as u; u.urlopen('http://127.0.0.1:3000/readyz', timeout=2)"
for _ in $(seq 480); do podman exec classifier-offline python -c "$probe" 2> /dev/null && break; sleep 0.5; done
warm_ready_s=$(elapsed "$started")
podman exec classifier-offline python -c "
import json, time, urllib.request as u
info = lambda: json.load(u.urlopen('http://127.0.0.1:3000/info', timeout=10))
for _ in range(600):
    if not info()['compile']['compiling']:
        break
    time.sleep(0.5)
assert info()['model'] == '$CLASSIFIER_MODEL_TAG', info()
assert info()['compile']['compiled'] and info()['compile']['graphs_from_cache'], info()['compile']" \
  || { podman logs classifier-offline | tail -n 40; fail "no network: not serving"; }
say "with no network and the warm compile cache: ready in $warm_ready_s s and serving"

podman rm -f classifier-offline > /dev/null  # the pod gets the machine to itself
say "podman kube play deploy/kubernetes"
python -m classifier.testing.kube_play "$image" --photo "$work/photo.jpg" --record "$work/kube.json" || fail "podman kube play"

python - << PY
import json
from bench.__main__ import machine
from bench.report import data_file, REPORT
record = {"image_mb": $size / 1e6, "build_s": $build_s, "ready_s": $ready_s, "compiled_s": $compiled_s,
          "warm_ready_s": $warm_ready_s, "stop_s": $stop_s,
          "base": "$BASE", "cleanup_removed_mb": $removed,
          "contents": json.load(open("$work/contents.json")),
          "kube_play": json.load(open("$work/kube.json")), "machine": machine()}
data_file(REPORT, "container.json").write_text(json.dumps(record, indent=1))
PY
say "OK: bench/KIND/container.json written"

#!/bin/sh
# Runs inside the image build, not on your machine: bentofile.yaml names it as docker.setup_script,
# which `bentoml containerize` runs as root after installing the Python packages. It removes what
# the service never uses (`python -m bench.image_contents IMAGE` measures what is left):
#   - uv's and pip's caches, which BentoML's Dockerfile keeps out of the image only with BuildKit;
#   - triton, torch.compile's GPU kernel compiler (about 0.9 GB), unless the image is for GPUs
#     (CLASSIFIER_GPUS set, as deploy/bentofile.gpu.yaml does): on CPUs inductor writes C++;
#   - git and gnupg, which BentoML's Debian setup installs for packages built from source (every
#     package here is a wheel), and apt's package lists and downloaded archives.
# It keeps what compiling the model at start needs (CLASSIFIER_COMPILE, README "Compiled model"):
# the C++ compiler BentoML installs, torch's C++ headers and Python's, which inductor's kernels
# include; without them the service would serve the slower eager model.
# The image BentoML builds with buildah is one layer, so this makes it smaller; with Docker's
# builder each step is a layer of its own and the removed files stay in the one below.
set -eu

megabytes() { du -sxm --apparent-size / 2> /dev/null | cut -f1; }
before=$(megabytes)

# Without BuildKit (buildah) the build's package caches stay in the image: uv's alone held every
# wheel's files again (about 1 GB once triton is gone, since the rest are hard links to them)
rm -rf /root/.cache

if [ "${CLASSIFIER_GPUS:-0}" = 0 ] \
  && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('triton') is None)"; then
  uv pip uninstall triton
fi

if command -v apt-get > /dev/null; then
  # build-essential stays, marked as wanted: inductor compiles the model's kernels at start
  apt-mark manual build-essential g++ > /dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --auto-remove \
    -o APT::AutoRemove::RecommendsImportant=false -o APT::AutoRemove::SuggestsImportant=false \
    git gnupg2 > /dev/null
  rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb
fi

echo "image-cleanup: removed $((before - $(megabytes))) MB"

#!/usr/bin/env bash
# A Python 3.11 base image made from Debian's own packages, for building the service's image
# where no container registry can be reached:
#   bash scripts/base-image.sh                       -> localhost/image-classifier-base:bookworm
#   bash scripts/base-image.sh --label               the label such an image would have
#   EXTRA_CA_CERTS=/usr/local/share/ca-certificates bash scripts/base-image.sh
# EXTRA_CA_CERTS: a folder of *.crt the image, and so the service's image, should trust for good
# (a TLS-intercepting proxy's CA, say). Building behind such a proxy does not need it:
# scripts/containerize.sh lends the build this machine's CAs. The image's label
# image-classifier.extra-ca-certs says which it trusts (extra_ca_certs_label below).
# python3-dev: Python's headers, which the compiled model's C++ kernels include (as in the
# python:3.11-slim image BentoML uses by default).
set -euo pipefail

IMAGE=${IMAGE:-localhost/image-classifier-base:bookworm}
# "none", or the digest of the extra certificates: scripts/container-smoke.sh rebuilds the base
# image when it trusts other CAs than asked
extra_ca_certs_label() { if [ -n "${EXTRA_CA_CERTS:-}" ]; then cat "$EXTRA_CA_CERTS"/*.crt | sha256sum | cut -c1-16; else echo none; fi; }
if [ "${1:-}" = --label ]; then extra_ca_certs_label; exit; fi
SUITE=bookworm # Debian 12: Python 3.11, which BentoML's Dockerfile asks uv for

# the mirror apt already uses on this machine
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
  mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
echo "==> debootstrap $SUITE from $mirror"
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python3-dev,python-is-python3,ca-certificates \
  "$SUITE" "$rootfs" "$mirror" > /dev/null

if [ -n "${EXTRA_CA_CERTS:-}" ]; then
  echo "==> trusting the certificates in $EXTRA_CA_CERTS"
  cp "$EXTRA_CA_CERTS"/*.crt "$rootfs/usr/local/share/ca-certificates/"
  chroot "$rootfs" update-ca-certificates > /dev/null
fi
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

echo "==> importing as $IMAGE"
# PIP_BREAK_SYSTEM_PACKAGES: BentoML's Dockerfile runs `pip install uv` with Debian's pip;
# SSL_CERT_FILE: uv trusts the system's certificates (and so the extra ones) only when told
tar -C "$rootfs" -c . | podman import \
  --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
  --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --change "LABEL image-classifier.extra-ca-certs=$(extra_ca_certs_label)" \
  - "$IMAGE" > /dev/null
podman image ls "$IMAGE"

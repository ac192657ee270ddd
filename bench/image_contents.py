"""What takes the room in the service's container image.

    python -m bench.image_contents localhost/image-classifier:smoke    (prints JSON)

Runs this same file inside the image (`podman run --entrypoint python`, no network) and adds up
the bytes of every file: the Python packages one by one (from their installed file lists, with the
bytecode compiled at build time), torch's CUDA libraries, the model in the Bento, and the rest of
the system. Standard
library only inside the image: it must measure any Bento's image, whatever it installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

INSIDE = "--inside"
SKIP = ("/proc", "/sys", "/dev", "/run", "/tmp")


def tree_bytes(root: str) -> int:
    """Bytes in the files under root (apparent sizes, hard links once), not following links."""
    total, seen = 0, set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in SKIP]
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def packages(site: Path) -> dict[str, int]:
    """Bytes per installed distribution: each entry of site-packages goes to the distribution whose
    file list names it (bytecode and all), the rest to its own name. A folder several distributions
    share (`nvidia/cu13/lib`) is split further down."""
    import importlib.metadata

    owners: dict[tuple[str, ...], set[str]] = {}
    for dist in importlib.metadata.distributions(path=[str(site)]):
        for file in dist.files or []:
            for depth in range(1, len(file.parts) + 1):
                owners.setdefault(file.parts[:depth], set()).add(dist.metadata["Name"])
    sizes: dict[str, int] = {}

    def add(entry: Path, key: tuple[str, ...]) -> None:
        names = owners.get(key, {entry.name})
        if len(names) > 1 and entry.is_dir():
            for child in entry.iterdir():
                add(child, (*key, child.name))
            return
        size = tree_bytes(str(entry)) if entry.is_dir() else entry.lstat().st_size
        name = min(names)
        sizes[name] = sizes.get(name, 0) + size

    for entry in site.iterdir():
        add(entry, (entry.name,))
    return dict(sorted(sizes.items(), key=lambda item: -item[1]))


def inside() -> dict:
    """Run in the image: the whole file system, split into packages, model and the rest."""
    import site
    import sysconfig

    site_packages = Path(sysconfig.get_paths()["purelib"])
    bento = Path(os.environ.get("BENTO_PATH", "/home/bentoml/bento"))
    total = tree_bytes("/")
    python = packages(site_packages)
    models = tree_bytes(str(bento / "models"))
    torch_lib = site_packages / "torch" / "lib"
    cuda_kernels = [f for f in torch_lib.glob("*.so*") if "cuda" in f.name or "nvshmem" in f.name]
    return {
        "total": total,
        "python_packages": python,
        # in the CUDA build of torch only: what a CPU-only image would not have
        "torch_cuda_libraries": sum(f.lstat().st_size for f in cuda_kernels),
        "model": models,
        "system": total - sum(python.values()) - models,
        "site_packages": str(site_packages),
        "prefix": site.PREFIXES[0],
    }


def measure(image: str) -> dict:
    """Measure image from the host, in a throwaway container with no network."""
    # as root: the image's user cannot read everything (/root, where build caches would hide)
    command = ["podman", "run", "--rm", "-i", "--network", "none", "--user", "root"]
    command += ["--entrypoint", "python"]
    answer = subprocess.run(
        [*command, image, "-", INSIDE],
        input=Path(__file__).read_bytes(),
        capture_output=True,
        check=True,
    )
    return json.loads(answer.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == [INSIDE]:
        print(json.dumps(inside()))
    elif len(sys.argv) == 2:
        print(json.dumps(measure(sys.argv[1]), indent=1))
    else:
        sys.exit(__doc__)

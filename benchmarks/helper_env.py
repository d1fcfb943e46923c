"""Helper virtual environments for benchmarks that compare against other frameworks.

``ensure_package("snntorch", "snntorch")`` returns when the module imports; otherwise it creates
(first time) ``benchmarks/.venv-NAME``, makes it see the **running** interpreter's packages, pip
installs the requirement into it and re-executes the calling script with the helper's Python.

Why not ``venv --system-site-packages``: that exposes the *base* interpreter's site-packages, so
when spikeforge and torch live in a project virtual environment (as the README installs them) the
helper sees neither. Instead the helper gets a ``.pth`` file that calls ``site.addsitedir`` on each
site-packages directory of the running interpreter (``addsitedir`` also processes their ``.pth``
files, so an editable spikeforge install is found); the helper's own site-packages come first, so
what pip installs there wins, and pip sees torch as installed and never downloads another build.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _site_dirs() -> list[str]:
    dirs = list(site.getsitepackages())
    user = site.getusersitepackages()
    if isinstance(user, str) and os.path.isdir(user):
        dirs.append(user)
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def helper_python(name: str) -> Path:
    return HERE / f".venv-{name}" / "bin" / "python"


def create_helper(name: str) -> Path:
    """Create ``benchmarks/.venv-NAME`` (if needed) seeing the running interpreter's packages."""
    venv = HERE / f".venv-{name}"
    py = helper_python(name)
    if not py.exists():
        print(f"creating {venv} (sees the packages of {sys.prefix})", flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    out = subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
    )
    lines = [f"import site; site.addsitedir({d!r})" for d in _site_dirs()]
    (Path(out.strip()) / "_spikeforge_parent_env.pth").write_text("\n".join(lines) + "\n")
    return py


def ensure_package(module: str, requirement: str, name: str | None = None) -> None:
    """Import ``module`` or re-run this script inside a helper environment where it is installed."""
    try:
        __import__(module)
        return
    except ImportError:
        pass
    name = name or module
    py = helper_python(name)
    if Path(sys.prefix).resolve() == py.parent.parent.resolve():
        sys.exit(f"{module} is not importable inside {py.parent.parent}; delete it and retry")
    py = create_helper(name)
    subprocess.check_call([str(py), "-m", "pip", "install", "-q", requirement])
    os.execv(str(py), [str(py), *sys.argv])

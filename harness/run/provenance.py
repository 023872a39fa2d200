"""Where the code of a run came from: the user's repository and each plugin's source.

The manifest records three things (:func:`provenance`):

* ``repository``: the git repository of the working directory the run was started in (the
  user's code: a grid file, plugin files, the project the benchmark belongs to), with its
  commit and whether tracked files differ from it; None outside a repository.
* ``plugin_sources``: for each distribution a loaded plugin came from, its version and how it
  is installed, from its PEP 610 ``direct_url.json``: ``editable`` (``pip install -e``),
  ``path`` (a local directory), ``vcs`` (``pip install git+...``, with the commit pip
  recorded), ``archive`` or ``index`` (none recorded); for a local directory, the
  commit and dirty state of the git checkout it is in.
* ``git`` (older key, kept): harness's own checkout, when it runs from one.

"Dirty" means tracked files differ from the commit (as ``git describe --dirty``):
untracked files, such as the run directories under ``results/``, do not count.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

#: Seconds each git command may take (a huge or network-mounted checkout is not recorded).
GIT_TIMEOUT_S = 10


def _git(path: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(path: Path) -> dict[str, Any] | None:
    """The git checkout holding ``path``: its root, commit, branch and dirty state; None when
    ``path`` is in no checkout (or git is missing, or the checkout has no commit yet)."""
    if not path.exists():
        return None
    root = _git(path, "rev-parse", "--show-toplevel")
    commit = _git(path, "rev-parse", "HEAD") if root else None
    if not root or not commit:
        return None
    status = _git(path, "status", "--porcelain", "--untracked-files=no")
    branch = _git(path, "symbolic-ref", "--short", "-q", "HEAD")
    return {"path": root, "commit": commit, "branch": branch or None,
            "dirty": None if status is None else bool(status)}


def distribution_source(dist: str) -> dict[str, Any]:
    """A distribution's version and install (PEP 610), with its checkout's git state where
    it was installed from a local directory."""
    try:
        distribution = md.distribution(dist)
    except md.PackageNotFoundError:
        return {"version": None, "install": "missing"}
    out: dict[str, Any] = {"version": distribution.version, "install": "index"}
    try:
        direct = json.loads(distribution.read_text("direct_url.json") or "null")
    except (OSError, ValueError):
        direct = None
    if not isinstance(direct, dict) or not isinstance(direct.get("url"), str):
        return out
    url = direct["url"]
    out["url"] = url
    if isinstance(direct.get("vcs_info"), dict):
        vcs = direct["vcs_info"]
        out.update(install="vcs", vcs=vcs.get("vcs"), commit=vcs.get("commit_id"))
        return out
    if isinstance(direct.get("dir_info"), dict):
        editable = bool(direct["dir_info"].get("editable"))
        out["install"] = "editable" if editable else "path"
        parsed = urlparse(url)
        if parsed.scheme == "file":
            local = Path(unquote(parsed.path))
            out["path"] = str(local)
            state = git_state(local)
            if state is not None:
                out.update(commit=state["commit"], dirty=state["dirty"],
                           repository=state["path"])
        return out
    out["install"] = "archive"
    return out


def provenance(distributions: Iterable[str], cwd: Path | None = None) -> dict[str, Any]:
    """The manifest's ``repository`` and ``plugin_sources`` (see the module's docstring)."""
    return {
        "repository": git_state(cwd or Path.cwd()),
        "plugin_sources": {dist: distribution_source(dist)
                           for dist in dict.fromkeys(distributions)},
    }

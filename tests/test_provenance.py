"""Provenance: the manifest records the user's repository and each plugin's source, and
``export`` puts the user's commit in ``commit_info``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import PACKAGES, run_cli

RUN = ["run", "-m", "regression", "-o", "sgd", "-s", "0", "--steps", "10", "--workers", "0",
       "--quiet"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com",
                           "-c", "user.name=t", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def _repo(path: Path, files: dict[str, str]) -> str:
    """A git repository at ``path`` holding ``files``, committed; its commit."""
    path.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (path / name).write_text(text)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "init")
    return _git(path, "rev-parse", "HEAD")


def _manifest(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return data


def test_the_users_repository_is_recorded_and_exported(tmp_path: Path) -> None:
    project = tmp_path / "project"
    first = _repo(project, {"bench.toml": "# my benchmark\n", "notes.md": "x\n"})
    (project / "notes.md").write_text("changed\n")  # a tracked file differs: dirty
    run = run_cli(*RUN, "--out", "results/r1", cwd=project)
    assert run.returncode == 0, run.stderr
    manifest = _manifest(project / "results" / "r1")
    repo = manifest["repository"]
    assert repo["commit"] == first and repo["dirty"] is True
    assert Path(repo["path"]).resolve() == project.resolve() and repo["branch"] == "main"
    exported = run_cli("export", "results/r1", "--format", "pytest-benchmark", cwd=project)
    assert exported.returncode == 0, exported.stderr
    info = json.loads(exported.stdout)["commit_info"]
    assert info["id"] == first and info["dirty"] is True and info["project"] == "project"
    harness_own = manifest["git"]  # harness's own checkout stays under its own key
    report = run_cli("report", "results/r1", cwd=project)
    assert report.returncode == 0, report.stderr
    page = (project / "results" / "r1" / "report" / "index.html").read_text()
    assert "Repository" in page and f"{first} (dirty)" in page and "Harness commit" in page
    assert info["harness"]["id"] == (harness_own["commit"] if harness_own else "unversioned")
    # committed: clean, although results/r1 is untracked (untracked files do not count)
    _git(project, "commit", "-q", "-am", "notes")
    second = run_cli(*RUN, "--out", "results/r2", cwd=project)
    assert second.returncode == 0, second.stderr
    repo = _manifest(project / "results" / "r2")["repository"]
    assert repo["commit"] == _git(project, "rev-parse", "HEAD") != first
    assert repo["dirty"] is False
    # outside any repository: none, and the export says so
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}  # tmp_path may sit inside a checkout
    third = run_cli(*RUN, "--out", "r", cwd=outside, env=env)
    assert third.returncode == 0, third.stderr
    assert _manifest(outside / "r")["repository"] is None
    exported = run_cli("export", "r", "--format", "pytest-benchmark", cwd=outside)
    assert json.loads(exported.stdout)["commit_info"]["id"] == "unversioned"


def test_each_plugin_distributions_source_is_recorded(tmp_path: Path) -> None:
    """An editable install of a plugin from a git checkout: its version, the install kind
    (PEP 610's direct_url.json), and the checkout's commit and dirty state."""
    source = tmp_path / "src"
    shutil.copytree(PACKAGES / "harness-sampleplugin", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    commit = _repo(source, {})
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--prefix", str(prefix), "-e",
                    str(source)], check=True, cwd=tmp_path,
                   env={**os.environ, "PIP_NO_CACHE_DIR": "1"})
    site_dir = next(prefix.glob("lib/python*/site-packages"))
    (source / "harness_sampleplugin" / "__init__.py").open("a").write("# edited\n")
    # an editable install works through a .pth file: add its site directory as Python would
    code = ("import site, sys; site.addsitedir(sys.argv.pop(1)); "
            "from harness.cli.main import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(site_dir), *RUN, "-o", "sgd,signsgd", "--out", "r"],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**os.environ, "HARNESS_PLUGINS": "harness,harness-sampleplugin"})
    assert proc.returncode == 0, proc.stderr
    sources = _manifest(tmp_path / "r")["plugin_sources"]
    sample = sources["harness-sampleplugin"]
    assert sample["version"] == "1.2.3" and sample["install"] == "editable"
    assert Path(sample["path"]) == source and sample["url"] == source.as_uri()
    assert sample["commit"] == commit and sample["dirty"] is True
    assert sources["harness"]["version"]  # harness's own built-ins are a distribution too
    assert sources["harness"]["install"] in ("editable", "path", "index", "vcs", "archive")

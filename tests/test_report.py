"""``harness report``: built from small real runs, opened in a real (headless) browser.

The browser test drives Debian's ``chromium`` with no extra Python dependency: a
copy of the report with a checking script injected (the report itself carries no
script, and its Content-Security-Policy forbids them) is loaded with
``--dump-dom``; the script writes every image's natural width, every error event,
console error, CSP violation and ``alert()`` call into the DOM on load. The real
page is screenshotted (kept under ``tests/artifacts/``) with the console logged to
stderr, which must hold no console message. Without chromium the test is skipped,
unless ``CI`` is set: there it must run.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import harness
from harness.cell import Cell
from harness.cli import main
from harness.outcome import CellResult
from harness.plugins import PluginHost
from harness.report import ReportFigure, ReportRun, build_report
from harness.results import RunDirectory

TESTS = Path(__file__).parent
ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", TESTS / "artifacts"))
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser",
                                                         "google-chrome")) if p), None)


def _run(out: Path, *args: str) -> Path:
    # some runs here end a cell on purpose (an error, a divergence): exit 0 all the same
    code = main(["run", *args, "--workers", "0", "--out", str(out), "--quiet",
                 "--fail-on", "none"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two problems x two optimizers x three seeds, 40 steps: a real run and its report."""
    run = _run(tmp_path_factory.mktemp("seeds") / "run", "-m", "regression,classification",
               "-o", "sgd,adam", "-s", "0-2", "--steps", "40")
    return build_report(run)


@pytest.fixture(scope="module")
def many_arms_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sgd at 16 learning rates, one seed: a sweep, which the page groups into one arm per
    optimizer (its selection and sensitivity figure in the Sweeps section);
    test_sixteen_arms_look_apart... covers more arms than the palette has colours."""
    lrs = ",".join(f"{0.005 * (i + 1):g}" for i in range(16))
    run = _run(tmp_path_factory.mktemp("arms") / "run", "-m", "regression", "-o", "sgd",
               "-s", "0", "--steps", "20", "--set", f"sgd.lr={lrs}")
    return build_report(run)


@pytest.fixture(scope="module")
def failed_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One problem, one seed, and an SGD cell that diverges (lr 1000)."""
    run = _run(tmp_path_factory.mktemp("failed") / "run", "-m", "regression", "-o", "sgd,adam",
               "-s", "0", "--steps", "40", "--set", "sgd.lr=1000")
    return build_report(run)


# -- content ---------------------------------------------------------------------------
def test_report_contents(seeds_report: Path) -> None:
    page = seeds_report.read_text("utf-8")
    folder = seeds_report.parent
    for csv in ("ranking", "time_to_target", "cost_to_target", "throughput",
                "performance_profile", "profile_scores", "failures"):
        assert (folder / f"{csv}.csv").is_file(), csv
    pngs = sorted(p.name for p in folder.glob("fig-*.png"))
    assert pngs and all((folder / p).stat().st_size > 1000 for p in pngs)
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(srcs) == pngs  # every figure referenced, by relative path
    # header: what was run
    for text in ("harness run -m regression,classification", "torch", "regression: synthetic",
                 "cpu: ", "Seeds</dt><dd>0, 1, 2"):
        assert text in page, text
    for title in ("Performance profile", "Steps to target", "Throughput", "Peak memory",
                  "Convergence: regression", "Convergence: classification", "Fit over the data",
                  "Every cell finished ok", "How the numbers were computed"):
        assert title in page, title
    assert "http://" not in page and "https://" not in page and "<script" not in page
    ranking = __import__("pandas").read_csv(folder / "ranking.csv")
    assert set(ranking["arm"]) == {"sgd", "adam"}
    assert (ranking["seeds_ok"] == 3).all()
    assert ranking["ci_low"].notna().all()  # three seeds: intervals available
    # positive losses: the log-scale t interval over the three seeds (never below zero; the
    # seeds' range would be too narrow)
    from harness.report import stats
    summary = __import__("pandas").read_parquet(folder.parent / "summary.parquet")
    for _, r in ranking.iterrows():
        values = summary[(summary["model"] == r["problem"])
                         & (summary["optimizer"] == r["arm"])][r["metric"]].to_numpy()
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(stats.log_t_interval(values))
        assert r["ci_method"] == stats.INTERVAL_LOG_T and r["ci_low"] > 0
        assert r["ci_low"] < values.min() and r["ci_high"] > values.max()
    assert "order statistics (75% with 3 seeds)" in page  # the bands say how sure they are
    others = ranking[~ranking["is_best"]]
    assert others["p_value"].notna().all() and (others["min_p"] == 0.25).all()


def test_report_with_failed_cells_one_seed_and_one_problem(failed_report: Path) -> None:
    page = failed_report.read_text("utf-8")
    assert "1 cell(s) did not finish ok" in page
    assert "diverged" in page
    assert "unavailable (n=1 &lt; 3)" in page  # no interval from one seed
    assert "Confidence bands are unavailable: fewer than 3 seeds" in page
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert all((failed_report.parent / s).is_file() for s in srcs)
    ttt = __import__("pandas").read_csv(failed_report.parent / "time_to_target.csv")
    assert len(ttt) == 2  # the diverged cell is a miss, not dropped
    assert not ttt.loc[ttt["status"] == "diverged", "reached"].any()


def test_skipped_cells_and_role_arms(tmp_path: Path) -> None:
    """Cells skipped for a missing device are not ranked; an arm that gives the GAN's
    discriminator its own optimizer is scored over the problems it ran, with no "-"."""
    grid = tmp_path / "grid.toml"
    grid.write_text('models = ["regression", "gan"]\noptimizers = ["sgd", "adam"]\n'
                    'seeds = "0"\nsteps = 30\n'
                    '[model.gan.role.discriminator]\noptimizer = "sgd"\n', "utf-8")
    run = _run(tmp_path / "run", str(grid), "-d", "cpu,mps", "--skip-unavailable")
    index = build_report(run)
    pd = __import__("pandas")
    ranking = pd.read_csv(index.parent / "ranking.csv")
    assert not ranking["problem"].str.contains("mps").any()
    assert (ranking["seeds"] == 1).all()
    page = index.read_text("utf-8")
    assert "were skipped (a device this machine lacks)" in page
    assert "cell(s) did not finish ok" not in page
    scores = pd.read_csv(index.parent / "profile_scores.csv").set_index("arm")
    assert not any("-" in arm.split("(")[-1] for arm in scores.index if "(" in arm)
    # sgd trains both of the GAN's networks anyway; adam's GAN cells are an arm of their own
    assert scores.loc["sgd", "problems"] == 2
    assert scores.loc["adam", "problems"] == 1
    assert scores.loc["adam (discriminator: sgd lr=0.01)", "problems"] == 1
    assert "each is scored over the problems it was run on" in page


def test_show_tells_rows_apart_and_shows_target_metrics(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path / "run", "-m", "regression,gan", "-o", "sgd", "-s", "0",
               "--steps", "20", "--set", "sgd.lr=0.01,0.05")
    capsys.readouterr()
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("model"))
    assert "hyperparameters" in header and "curve_distance" in header
    rows = [line for line in lines if line.lstrip().startswith("regression")]
    assert len(rows) == 2 and any("lr=0.01" in r for r in rows) and any("lr=0.05" in r
                                                                          for r in rows)


def test_show_does_not_take_a_parameter_for_a_metric() -> None:
    """A parameter named like a metric (test_size, eval_every) is the problem's setting."""
    import pandas as pd

    from harness.cli.read import format_summary

    summary = pd.DataFrame([{
        "model": "split", "params": "eval_every=5,test_size=0.25", "optimizer": "sgd",
        "device": "cpu", "seed": 0, "status": "ok", "final_loss": 0.5,
        "eval_every": 5, "test_size": 0.25, "test_loss": 0.75,
    }])
    header = format_summary(summary).splitlines()[0].split()
    assert "test_loss" in header
    assert "test_size" not in header and "eval_every" not in header


def test_report_cli_and_bad_directories(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        failed_report: Path) -> None:
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no results directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "holds no harness results" in capsys.readouterr().err
    out = tmp_path / "elsewhere"
    assert main(["report", str(failed_report.parent.parent), "--out", str(out)]) == 0
    assert (out / "index.html").is_file()
    assert str(out / "index.html") in capsys.readouterr().out


def test_a_report_removes_only_the_figures_its_previous_report_wrote(
        tmp_path: Path, failed_report: Path, seeds_report: Path) -> None:
    """``--out DIR`` may hold the user's own files named fig-*.png: they stay."""
    out = tmp_path / "mine"
    out.mkdir()
    mine = [out / "fig-01-mine.png", out / "fig-99-notes.png"]
    for path in mine:
        path.write_bytes(b"the user's")
    assert main(["report", str(seeds_report.parent.parent), "--out", str(out)]) == 0
    first = set(json.loads((out / ".harness-figures.json").read_text()))
    assert main(["report", str(failed_report.parent.parent), "--out", str(out)]) == 0
    second = set(json.loads((out / ".harness-figures.json").read_text()))
    pngs = {p.name for p in out.glob("fig-*.png")}
    assert pngs == second | {"fig-99-notes.png"} | ({"fig-01-mine.png"} - second)
    assert all(p.read_bytes() == b"the user's" for p in mine if p.name not in second)
    assert not (first - second) & pngs  # the first report's own figures are gone


# -- escaping and the figure hook ---------------------------------------------------------------
class XScript(harness.Problem):
    name = "x-script"
    description = SCRIPT
    steps = 20
    batch_size = 16
    metrics = ("test_loss",)
    target = harness.Target("test_loss", 0.5, "min")
    params = (harness.Param("label", "plain"),)

    def build(self, ctx: harness.BuildContext) -> harness.Supervised:
        if ctx.params["label"] != "plain":
            raise RuntimeError(SCRIPT)
        x = torch.rand(64, 1, generator=ctx.cpu_generator())
        y = 2 * x
        model = nn.Linear(1, 1)
        return harness.Supervised(model=model, loss_fn=nn.functional.mse_loss, inputs=x,
                                  targets=y,
                                  evaluate=lambda m: {"test_loss": float(((m(x) - y) ** 2)
                                                                         .mean())})


class XScriptPlugin:
    @harness.hookimpl
    def register_models(self, registry: harness.ProblemRegistry) -> None:
        registry.add(XScript())

    @harness.hookimpl
    def report_figures(self, run: ReportRun, problem: str) -> list[ReportFigure] | None:
        if problem != "x-script":
            return None
        from harness.report.figures import new_figure

        fig = new_figure(3, 2)
        fig.subplots().plot([0, 1], [0, 1])
        return [ReportFigure(title=SCRIPT, figure=fig, caption=f"caption {SCRIPT}")]


class RaisingFigures:
    @harness.hookimpl
    def report_figures(self, run: ReportRun, problem: str) -> list[ReportFigure] | None:
        raise ValueError(f"drawing failed {SCRIPT}")


class WrongFigures:
    @harness.hookimpl
    def report_figures(self, run: ReportRun, problem: str) -> Any:
        return ["not a figure"]


@pytest.fixture
def script_report(tmp_path: Path, register_plugin: Any, host: PluginHost) -> Path:
    register_plugin(XScriptPlugin(), "x-script-plugin")
    register_plugin(RaisingFigures(), "raising-figures")
    register_plugin(WrongFigures(), "wrong-figures")
    run = _run(tmp_path / "run", "-m", "x-script", "-o", "sgd", "-s", "0",
               "--set", f"label=plain,{SCRIPT}")
    return build_report(run, host=host)


def test_plugin_strings_are_escaped_and_figure_errors_shown(script_report: Path) -> None:
    page = script_report.read_text("utf-8")
    assert SCRIPT not in page
    assert "<script" not in page.lower()
    # description, error message, parameter value, figure title, hook error: all as text
    assert page.count(ESCAPED) >= 5
    assert f"<p class=\"description\">{ESCAPED}</p>" in page
    assert "raising-figures" in page and "ValueError: drawing failed " + ESCAPED in page
    assert "wrong-figures" in page and "returned str, expected ReportFigure" in page
    assert "1 cell(s) did not finish ok" in page
    assert any("x-script-plugin" in p.name for p in script_report.parent.glob("fig-*.png"))


def test_hook_errors_are_per_plugin(host: PluginHost, register_plugin: Any) -> None:
    register_plugin(RaisingFigures(), "raising-figures")
    register_plugin(XScriptPlugin(), "x-script-plugin")
    calls = {c.plugin: c for c in host.call_each("report_figures", run=None, problem="other")}
    assert calls["raising-figures"].error == f"ValueError: drawing failed {SCRIPT}"
    assert calls["x-script-plugin"].value is None and calls["x-script-plugin"].error is None
    assert "builtin-figures" in calls


# -- the tutorial's pictures from constructed records ---------------------------------------------
def _write(run_dir: RunDirectory, problem: str, optimizer: str, seed: int,
           artifacts: dict[str, Any], curve: tuple[dict[str, Any], ...] = (),
           params: tuple[tuple[str, Any], ...] = ()) -> None:
    cell = Cell(problem=problem, optimizer=optimizer, device="cpu", seed=seed, steps=100,
                batch_size=8, params=params)
    run_dir.write_cell(CellResult(cell=cell, status="ok", summary={"final_loss": 0.1},
                                  curve=curve, artifacts=artifacts))


def test_problem_pictures_from_constructed_records(tmp_path: Path) -> None:
    from harness_builtins.figures import report_figures

    from harness.report.figures import save

    run_dir = RunDirectory(tmp_path)
    x = [i / 7 - 1 for i in range(15)]
    for opt in ("sgd", "adam"):
        for seed in (0, 1):
            _write(run_dir, "gan", opt, seed, {
                "x": x, "artist_lower": [v * v for v in x],
                "artist_upper": [2 * v * v + 1 for v in x],
                "paintings": {str(s): [[v * v + 0.1 * k for v in x] for k in range(16)]
                              for s in (0, 50, 100)}})
            _write(run_dir, "dqn", opt, seed, {
                "env": "CartPole-v1", "episode_returns": [10.0 + i for i in range(30)],
                "episode_end_steps": [20 * (i + 1) for i in range(30)],
                "episode_end_s": [0.1 * (i + 1) for i in range(30)],
                # Greedy evaluation, kept by the DQN; a record without it still draws.
                **({"eval_steps": [200, 400, 600], "eval_returns": [9.5, 60.0, 200.0],
                    "solved_return": 195.0} if opt == "adam" else {})})
            _write(run_dir, "autoencoder", opt, seed, {
                "codes": [[i * 0.1, -i * 0.2, i * 0.05] for i in range(40)],
                "labels": [i % 10 for i in range(40)]})
            for bn in (False, True):
                _write(run_dir, "batchnorm", opt, seed, {
                    "batch_norm": bn,
                    "pre_activation": [{"layer": i, "counts": [1, 4, 9, 4, 1],
                                        "edges": [-2, -1, 0, 1, 2, 3]} for i in range(3)]},
                       params=(("batch_norm", bn),))
            _write(run_dir, "dropout", opt, seed, {
                "x": x, "y": x, "test_y": [v + 0.1 for v in x], "prediction": x},
                curve=tuple({"step": s, "elapsed_s": s / 100, "loss": 1 / s,
                             "train_loss": 1 / s, "test_loss": 1.5 / s} for s in (10, 20, 30)))
    run = ReportRun.load(tmp_path)
    expected = {
        "gan": ["Paintings against the artists' bounds"],
        "dqn": ["Episode returns on CartPole-v1"],
        "autoencoder": ["3-D codes of held-out digits"],
        "batchnorm": ["Pre-activation histograms per layer"],
        "dropout": ["Fit over the data", "Train and test loss"],
    }
    for problem, titles in expected.items():
        figures = report_figures(run, problem) or []
        assert [f.title for f in figures] == titles, problem
        for i, f in enumerate(figures):
            path = save(f.figure, tmp_path / f"{problem}-{i}.png")
            assert path.stat().st_size > 1000
    (returns,) = report_figures(run, "dqn") or []
    assert len(returns.figure.axes) == 2 and "greedy policy" in returns.caption
    assert [line.get_ydata()[0] for line in returns.figure.axes[1].lines][-1] == 195.0
    assert report_figures(run, "no-such-problem") is None


def _line_styles(fig: Any) -> dict[str, tuple[Any, ...]]:
    """Each labelled line's arm (its label up to " (") and its colour, style and marker."""
    from matplotlib.colors import to_hex

    out: dict[str, tuple[Any, ...]] = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = str(line.get_label()).split(" (")[0]
            if label.startswith("_") or label == "target":
                continue
            out[label] = (to_hex(line.get_color()), line.get_linestyle(), line.get_marker())
    return out


def test_sixteen_arms_look_apart_and_alike_in_every_figure(tmp_path: Path) -> None:
    """Past the palette's ten colours, line styles and markers tell arms apart; an arm has
    the same colour and style in the report's figures and in a plugin's (the DQN's, which
    shows only some of the run's arms)."""
    from harness_builtins.figures import report_figures

    from harness.report import figures as F

    run_dir = RunDirectory(tmp_path)
    names = [f"opt{i:02d}" for i in range(16)]
    for name in names:
        _write(run_dir, "dropout", name, 0, {}, curve=tuple(
            {"step": s, "elapsed_s": s / 100, "loss": 1 / s} for s in (10, 20, 30)))
    for name in names[8:]:
        _write(run_dir, "dqn", name, 0, {"env": "CartPole-v1",
                                         "episode_returns": [10.0 + i for i in range(30)]})
    run = ReportRun.load(tmp_path)
    palette = F.arm_palette(run.arms())
    convergence = F.convergence_figure(run, "dropout", palette)
    assert convergence is not None
    styles = _line_styles(convergence[0])
    assert sorted(styles) == names
    assert len(set(styles.values())) == 16  # no two arms alike
    assert len({c for c, _, _ in styles.values()}) == 10  # the palette's ten colours
    legend = convergence[0].axes[0].get_legend()
    assert legend is not None and len(legend.get_texts()) == 16
    (returns,) = report_figures(run, "dqn") or []
    dqn = _line_styles(returns.figure)
    assert sorted(dqn) == names[8:]
    assert all(dqn[arm] == styles[arm] for arm in dqn), (dqn, styles)


def test_an_arm_with_a_failed_seed_ranks_after_those_without(tmp_path: Path) -> None:
    """sgd's two surviving seeds have the lower mean, but its third diverged."""
    from harness.report.tables import ranking

    run_dir = RunDirectory(tmp_path)
    for optimizer, losses in (("sgd", [0.01, 0.02, None]), ("adam", [0.1, 0.2, 0.3])):
        for seed, loss in enumerate(losses):
            cell = Cell(problem="toy", optimizer=optimizer, device="cpu", seed=seed, steps=10,
                        batch_size=8)
            run_dir.write_cell(CellResult(
                cell=cell, status="ok" if loss is not None else "diverged",
                summary={"final_loss": loss if loss is not None else float("nan")}))
    table = ranking(ReportRun.load(tmp_path)).set_index("arm")
    assert table.loc["adam", "rank"] == 1 and table.loc["adam", "is_best"]
    assert table.loc["sgd", "rank"] == 2 and table.loc["sgd", "seeds_failed"] == 1
    assert table.loc["sgd", "mean"] == pytest.approx(0.015)
    assert table.loc["sgd", "pairs"] == 2  # paired with adam on the seeds both finished


def test_target_direction_without_the_problem_installed(tmp_path: Path) -> None:
    """A run read where its plugin is not installed: the direction comes from the data."""
    run_dir = RunDirectory(tmp_path)
    for seed, reached in ((0, True), (1, False)):
        cell = Cell(problem="elsewhere", optimizer="sgd", device="cpu", seed=seed, steps=20,
                    batch_size=4)
        curve = ({"step": 10, "elapsed_s": 0.1, "loss": 1.0, "quality": 0.3},
                 {"step": 20, "elapsed_s": 0.2, "loss": 0.5, "quality": 0.7 if reached else 0.4})
        run_dir.write_cell(CellResult(cell=cell, status="ok", curve=curve, summary={
            "final_loss": 0.5, "quality": curve[-1]["quality"], "target_metric": "quality",
            "target_threshold": 0.6, "time_to_target_s": 0.2 if reached else None,
            "steps_to_target": 20 if reached else None}))
    run = ReportRun.load(tmp_path)
    target = run.target("elsewhere")
    assert target is not None and (target.metric, target.mode) == ("quality", "max")
    assert run.final_metric("elsewhere") == ("quality", "max")


# -- the browser --------------------------------------------------------------------------------
CHECK_SCRIPT = """<script>
window.__errors = []; window.__alerts = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  window.__errors.push(t && t.tagName ? 'failed to load ' + (t.src || t.href) : String(e.message));
}, true);
document.addEventListener('securitypolicyviolation', function (e) {
  window.__errors.push('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});
console.error = function () { window.__errors.push(Array.prototype.join.call(arguments, ' ')); };
window.alert = function (m) { window.__alerts.push(String(m)); };
window.addEventListener('load', function () {
  var pre = document.createElement('pre');
  pre.id = 'harness-check';
  pre.textContent = JSON.stringify({
    images: Array.prototype.map.call(document.images, function (i) {
      return [i.getAttribute('src'), i.naturalWidth]; }),
    errors: window.__errors, alerts: window.__alerts, text: document.body.innerText});
  document.body.appendChild(pre);
});
</script>"""


def _need_chromium() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return CHROMIUM


def _chromium(user_data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [_need_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={user_data}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _console(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _browser_check(index: Path, tmp_path: Path) -> dict[str, Any]:
    """Load a checking copy of ``index`` beside it; return what its script found."""
    page = index.read_text("utf-8")
    assert "default-src 'none';" in page
    page = page.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';",
                        1).replace("<head>", "<head>" + CHECK_SCRIPT, 1)
    check = index.with_name("_browser_check.html")
    check.write_text(page, "utf-8")
    try:
        proc = _chromium(tmp_path / "profile-check", "--dump-dom", check.as_uri())
    finally:
        check.unlink()
    match = re.search(r'<pre id="harness-check">(.*?)</pre>', proc.stdout, re.S)
    assert match, f"no check result from chromium (rc {proc.returncode}): {proc.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(match.group(1)))
    result["console"] = _console(proc.stderr)
    return result


def _screenshot(index: Path, tmp_path: Path, name: str) -> tuple[Path, list[str]]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    proc = _chromium(tmp_path / "profile-shot", f"--screenshot={shot}",
                     "--window-size=1280,4000", "--hide-scrollbars", index.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, \
        f"no screenshot at {shot} (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return shot, _console(proc.stderr)


@pytest.fixture
def browser_tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    shutil.rmtree(tmp_path / "profile-check", ignore_errors=True)
    shutil.rmtree(tmp_path / "profile-shot", ignore_errors=True)


def test_report_in_headless_chromium(seeds_report: Path, failed_report: Path,
                                     many_arms_report: Path, browser_tmp: Path) -> None:
    _need_chromium()
    for index, name in ((seeds_report, "report.png"), (failed_report, "report-failed.png"),
                        (many_arms_report, "report-16-arms.png")):
        result = _browser_check(index, browser_tmp)
        shot, console = _screenshot(index, browser_tmp, name)
        where = f"(screenshot: {shot})"
        n_figs = len(list(index.parent.glob("fig-*.png")))
        assert len(result["images"]) == n_figs > 0, where
        assert all(width > 0 for _, width in result["images"]), f"{result['images']} {where}"
        assert result["errors"] == [], where
        assert result["alerts"] == [], where
        assert result["console"] == [] and console == [], f"{result['console']} {console} {where}"
        assert "Performance profile" in result["text"]
        if index == many_arms_report:
            assert "Sensitivity: regression" in result["text"]
            assert "16" in result["text"].split("configurations tried")[1][:200]


def test_escaped_report_in_headless_chromium(script_report: Path, browser_tmp: Path) -> None:
    _need_chromium()
    result = _browser_check(script_report, browser_tmp)
    shot, console = _screenshot(script_report, browser_tmp, "report-escaping.png")
    assert result["alerts"] == [], f"a plugin's script ran (screenshot: {shot})"
    assert SCRIPT in result["text"]  # shown as text
    assert result["errors"] == [] and result["console"] == [] and console == []
    assert all(width > 0 for _, width in result["images"])


# -- drawing: parallel parts, layout ------------------------------------------------------
def test_parts_drawn_in_forked_workers_make_the_same_page(seeds_report: Path,
                                                          tmp_path: Path) -> None:
    run = seeds_report.parent.parent
    pages = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        index = build_report(run, out_dir=out, workers=workers)
        pages[workers] = (index.read_text("utf-8"), sorted(p.name for p in out.glob("*.png")))
        listed = json.loads((out / ".harness-figures.json").read_text("utf-8"))
        assert sorted(listed) == pages[workers][1]  # one list of all parts' figures
        assert not list(out.glob(".harness-figures-*.json"))  # the parts' lists are merged
    assert pages[1] == pages[2]
    assert len(pages[1][1]) >= 4


def test_report_workers_below_one_is_one_line(seeds_report: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(seeds_report.parent.parent), "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers must be at least 1" in err[0]


def test_an_arm_whose_seeds_all_missed_keeps_its_lane() -> None:
    import pandas as pd

    from harness.report import figures as F
    from harness.report import overview as O

    arms = ["sgd", "momentum", "adam"]  # the gan's quick-preset result: only sgd reached
    ttt = pd.DataFrame({"problem": ["p"] * 6, "arm": [a for a in arms for _ in (0, 1)],
                        "reached": [True, True, False, False, False, False],
                        "time_s": [2.7, 1.9] + [float("nan")] * 4})
    with F.theme():
        drawn = O.time_to_target_figure(ttt, F.arm_palette(arms))
    assert drawn is not None and drawn.left_out == 0
    (ax,) = drawn.figure.axes
    assert [t.get_text() for t in ax.get_yticklabels()] == ["p"]
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == [*arms, "median", "missed the target"]
    crosses = [c for c in ax.collections
               if len(c.get_offsets()) == 4 and c.get_facecolor()[0][0] > 0.7]  # red
    assert len(crosses) == 1
    ys = crosses[0].get_offsets()[:, 1]
    lo, hi = sorted(ax.get_ylim())
    assert lo < min(ys) and max(ys) < hi  # inside the axes, adam's below momentum's
    adam = O._Lanes({"p": 0}, arms).centre("p", "adam")
    assert sorted(ys)[-2:] == pytest.approx([adam] * 2, abs=0.1)


def test_margin_layout_fits_every_label_in_the_figure_without_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from harness.report import figures as F

    arms = ["sgd", "adam lr=0.001 betas=(0.9, 0.999)", "momentum"]
    with F.theme():
        fig = F.new_figure(12, 6)
        axes = fig.subplots(2, 3).ravel()
        for i, ax in enumerate(axes):
            ax.barh(arms, [1e5 * (i + 1), 2e5, 3e5])
            ax.set_xlabel("samples per second")
            ax.set_title(f"problem {i}")
        axes[0].set_ylabel("optimizer")
        fig.suptitle("a figure title")
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
    frame = fig.bbox
    boxes = [ax.get_tightbbox(renderer) for ax in axes]
    for box in boxes:
        assert box is not None
        assert box.x0 >= frame.x0 - 1 and box.x1 <= frame.x1 + 1
        assert box.y0 >= frame.y0 - 1 and box.y1 <= frame.y1 + 1
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a is not None and b is not None
            assert not a.overlaps(b), (a, b)
    title = fig.get_suptitle()
    assert title and fig._suptitle is not None  # type: ignore[attr-defined]
    top_of_axes = max(b.y1 for b in boxes if b is not None)
    assert fig._suptitle.get_window_extent(renderer).y0 >= top_of_axes - 1  # type: ignore[attr-defined]

"""Grid parsing and expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.errors import DeviceUnavailableError, UsageError
from harness.grid import (
    GridSpec,
    apply_sets,
    apply_toml,
    expand,
    load_grid_file,
    load_preset,
    parse_int,
    parse_seeds,
    parse_set,
)
from harness.plugins import PluginHost


@pytest.mark.parametrize(("text", "seeds"), [
    ("0-4", [0, 1, 2, 3, 4]), ("3", [3]), ("0,2,5", [0, 2, 5]), ("0-1,7", [0, 1, 7]),
    (2, [2]), ([4, 1], [4, 1]),
])
def test_seeds(text: object, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("bad", ["", "a", "4-1", "-1", "0-", "1,1", "0-999999", True, 1.5, []])
def test_bad_seeds(bad: object) -> None:
    with pytest.raises(UsageError, match="seeds"):
        parse_seeds(bad)


def test_parse_set() -> None:
    assert parse_set("activation=tanh") == (None, "activation", ["tanh"])
    assert parse_set("adam.lr=0.001") == ("adam", "lr", [0.001])
    assert parse_set("activation=relu,tanh") == (None, "activation", ["relu", "tanh"])
    assert parse_set("adam.betas=[0.9,0.999]") == ("adam", "betas", [[0.9, 0.999]])
    assert parse_set("dropout=true,false") == (None, "dropout", [True, False])
    for bad in ("noequals", "=3", "a.b.c=1", "lr=", "lr=1,,2"):
        with pytest.raises(UsageError):
            parse_set(bad)


def spec_from(toml: str, tmp_path: Path) -> GridSpec:
    path = tmp_path / "grid.toml"
    path.write_text(toml)
    spec = GridSpec()
    apply_toml(spec, load_grid_file(path), str(path))
    return spec


def test_grid_file_axes_and_scopes(tmp_path: Path, host: PluginHost) -> None:
    spec = spec_from("""
models = ["regression", "classification"]
optimizers = ["sgd", "adam"]
seeds = "0-1"
steps = 20
[params]
activation = ["relu", "tanh"]
[model.classification]
steps = 7
activation = "sigmoid"
[optimizer.adam]
lr = [0.001, 0.01]
betas = [0.8, 0.9]
""", tmp_path)
    cells = expand(spec, host.problems, host.optimizers).cells
    reg = [c for c in cells if c.problem == "regression"]
    cls = [c for c in cells if c.problem == "classification"]
    # regression: 2 activations x (sgd + 2 adam lrs) x 2 seeds
    assert len(reg) == 2 * 3 * 2
    assert {dict(c.params)["activation"] for c in reg} == {"relu", "tanh"}
    assert {c.steps for c in reg} == {20}
    assert {c.steps for c in cls} == {7} and {dict(c.params)["activation"] for c in cls} == {
        "sigmoid"}
    adam = {c.hyper for c in cells if c.optimizer == "adam"}
    assert {dict(h)["lr"] for h in adam} == {0.001, 0.01}
    assert {dict(h)["betas"] for h in adam} == {(0.8, 0.9)}  # a flat list is one tuple value
    assert len({c.cell_id for c in cells}) == len(cells)


def test_the_readme_grid_file_expands(tmp_path: Path, host: PluginHost) -> None:
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    found = re.search(r"### A grid file\n\n```toml\n(.*?)```", readme, re.S)
    assert found, "README has no grid file example"
    cells = expand(spec_from(found.group(1), tmp_path), host.problems, host.optimizers).cells
    gan = [c for c in cells if c.problem == "gan"]
    assert gan and all(c.roles and c.roles[0][:2] == ("discriminator", "sgd") for c in gan)
    assert {c.steps for c in cells if c.problem == "cnn"} == {200}


def test_set_overrides_file(tmp_path: Path, host: PluginHost) -> None:
    spec = spec_from('models = ["regression"]\noptimizers = ["adam"]\n'
                     '[optimizer.adam]\nlr = 0.5\n', tmp_path)
    apply_sets(spec, ["adam.lr=0.001", "activation=relu,softplus"], host.problems,
               host.optimizers)
    cells = expand(spec, host.problems, host.optimizers).cells
    assert {dict(c.hyper)["lr"] for c in cells} == {0.001}
    assert {dict(c.params)["activation"] for c in cells} == {"relu", "softplus"}


def test_hyperparameter_defaults_are_resolved_into_the_key(host: PluginHost) -> None:
    spec = GridSpec(models=["regression"], optimizers=["momentum"])
    [cell] = expand(spec, host.problems, host.optimizers).cells
    assert dict(cell.hyper) == {"lr": 0.01, "momentum": 0.8}


@pytest.mark.parametrize(("toml", "message"), [
    ('models = ["regresion"]', "did you mean 'regression'"),
    ('optimizers = ["adamm"]', "did you mean 'adam'"),
    ('modles = ["cnn"]', "did you mean 'models'"),
    ('models = ["regression"]\n[params]\nactivaton = "relu"', "did you mean 'activation'"),
    ('models = ["regression"]\n[params]\nactivation = "swish"', "must be one of"),
    ('models = ["regression"]\n[optimizer.sgd]\nlrr = 0.1', "did you mean 'lr'"),
    ('models = ["regression"]\n[optimizer.sgd]\nlr = "fast"', "lr must look like"),
    ('models = ["regression"]\n[optimizer.sgd]\nlr = -1.0', "lr must be >= 0"),
    ('models = ["regression"]\n[optimizer.sgd]\nlr = nan', "must be finite"),
    ('models = ["regression"]\n[optimizer.sgd]\nlr = 1' + "0" * 400, "lr is too large"),
    ('models = ["regression"]\n[model.classification]\nsteps = 3', "it is not selected"),
    ('models = ["regression"]\n[model.regression]\nwidth = 3', "has no parameter 'width'"),
    ('steps = 0', "out of range"),
    ('steps = -5', "out of range"),
    ('batch_size = "big"', "positive integer"),
    ('devices = ["tpu"]', "unknown device 'tpu'"),
    ('devices = ["cpu:1"]', "unknown device"),
    ('models = []', "non-empty list"),
    ('models = ["cnn", "cnn"]', "listed twice"),
    ('models = ["regression"]\n[params]\nactivation = ["relu", "relu"]', "listed twice"),
])
def test_bad_grid_files(toml: str, message: str, tmp_path: Path, host: PluginHost) -> None:
    with pytest.raises(UsageError, match=message):
        spec = spec_from(toml, tmp_path)
        expand(spec, host.problems, host.optimizers)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read grid file"):
        load_grid_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("models = [")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_grid_file(bad)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00models")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_grid_file(binary)


def test_unavailable_device(host: PluginHost) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    spec = GridSpec(models=["regression"], optimizers=["sgd"], devices=["cpu", "cuda"])
    with pytest.raises(DeviceUnavailableError, match="--skip-unavailable"):
        expand(spec, host.problems, host.optimizers)
    grid = expand(spec, host.problems, host.optimizers, skip_unavailable=True)
    assert grid.unavailable == {"cuda": "CUDA is not available on this machine"}
    assert [c.device for c in grid.cells] == ["cpu", "cuda"]


@pytest.mark.parametrize("preset", ["quick", "default"])
def test_presets_cover_every_builtin_problem(preset: str, host: PluginHost) -> None:
    spec = GridSpec()
    apply_toml(spec, load_preset(preset), preset)
    cells = expand(spec, host.problems, host.optimizers).cells
    assert {c.problem for c in cells} == set(host.problems.names())


# -- narrowing a file with -m/-o ---------------------------------------------------------
def readme_grid(tmp_path: Path) -> GridSpec:
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text("utf-8")
    found = re.search(r"### A grid file\n\n```toml\n(.*?)```", readme, re.S)
    assert found, "README has no grid file example"
    return spec_from(found.group(1), tmp_path)


def narrowed(spec: GridSpec, models: str | None = None, optimizers: str | None = None,
             sets: tuple[str, ...] = (), host: PluginHost | None = None) -> GridSpec:
    """What `harness run FILE -m ... -o ... --set ...` does to the file's spec."""
    if models is not None:
        spec.models = models.split(",")
    if optimizers is not None:
        spec.optimizers = optimizers.split(",")
    if sets:
        assert host is not None
        apply_sets(spec, list(sets), host.problems, host.optimizers)
    return spec


@pytest.mark.parametrize(("models", "optimizers", "expected"), [
    ("regression", None, {("regression", "sgd"), ("regression", "momentum"),
                          ("regression", "adam")}),
    (None, "sgd", {(m, "sgd") for m in ("regression", "classification", "cnn", "gan")}),
    ("cnn", "adam", {("cnn", "adam")}),
])
def test_flags_narrow_the_readme_grid_file(models: str | None, optimizers: str | None,
                                           expected: set[tuple[str, str]], tmp_path: Path,
                                           host: PluginHost) -> None:
    spec = narrowed(readme_grid(tmp_path), models, optimizers)
    cells = expand(spec, host.problems, host.optimizers).cells
    assert {(c.problem, c.optimizer) for c in cells} == expected
    # What is still selected keeps the file's settings.
    assert {c.steps for c in cells if c.problem == "cnn"} <= {200}
    assert {dict(c.hyper)["lr"] for c in cells if c.optimizer == "adam"} <= {0.001, 0.01}


def test_flags_narrow_a_preset(host: PluginHost) -> None:
    spec = GridSpec()
    apply_toml(spec, load_preset("quick"), "preset quick")  # it has [model.dqn]
    cells = expand(narrowed(spec, "cnn", "sgd"), host.problems, host.optimizers).cells
    assert {(c.problem, c.optimizer) for c in cells} == {("cnn", "sgd")}


def test_a_narrowed_spec_survives_a_manifest(tmp_path: Path, host: PluginHost) -> None:
    import json
    from dataclasses import asdict

    spec = narrowed(readme_grid(tmp_path), "cnn", "adam")
    again = GridSpec(**json.loads(json.dumps(asdict(spec))))  # what --resume reads back
    assert (expand(again, host.problems, host.optimizers).cells
            == expand(spec, host.problems, host.optimizers).cells)


@pytest.mark.parametrize(("toml", "flags", "sets", "message"), [
    # The file is wrong on its own: narrowing does not hide that.
    ('models = ["regression", "cnn"]\n[model.cnnn]\nsteps = 3', (None, None), (),
     "unknown model 'cnnn' .*did you mean 'cnn'"),
    ('models = ["regression", "cnn"]\n[model.cnnn]\nsteps = 3', ("regression", None), (),
     "did you mean 'cnn'"),
    ('optimizers = ["sgd"]\n[optimizer.adamm]\nlr = 0.1', (None, "sgd"), (),
     "did you mean 'adam'"),
    ('models = ["regression"]\n[model.cnn]\nsteps = 3', ("regression", None), (),
     "settings for model 'cnn': it is not selected"),
    ('models = ["regression"]\noptimizers = ["sgd"]\n[optimizer.adam]\nlr = 0.1',
     ("regression", "sgd"), (), "settings for optimizer 'adam': it is not selected"),
    ('models = ["regression"]\n[model.gan.role.discriminator]\nlr = 0.1', ("regression", None),
     (), "settings for model 'gan': it is not selected"),
    ('models = ["regression", "cnn"]\n[params]\nactivaton = "relu"', ("cnn", None), (),
     "takes the parameter 'activaton'"),
    # What the user typed on the command line must apply to what is selected.
    ('models = ["regression", "cnn"]', ("regression", None), ("cnn.steps=3",),
     "settings for model 'cnn': it is not selected"),
    ('models = ["regression", "cnn"]\n[model.cnn]\nsteps = 3', ("regression", None),
     ("cnn.steps=3",), "settings for model 'cnn': it is not selected"),
    ('models = ["regression", "cnn"]\noptimizers = ["sgd", "adam"]', ("regression", "sgd"),
     ("adam.lr=0.1",), "settings for optimizer 'adam': it is not selected"),
    ('models = ["cnn", "regression"]\n[params]\nactivation = "tanh"', ("cnn", None),
     ("activation=tanh",), "no selected model or optimizer takes the parameter 'activation'"),
])
def test_narrowing_keeps_real_mistakes(toml: str, flags: tuple[str | None, str | None],
                                       sets: tuple[str, ...], message: str, tmp_path: Path,
                                       host: PluginHost) -> None:
    spec = narrowed(spec_from(toml, tmp_path), *flags, sets=sets, host=host)
    with pytest.raises(UsageError, match=message):
        expand(spec, host.problems, host.optimizers)


def test_a_file_param_only_the_left_out_take_is_dropped(tmp_path: Path,
                                                         host: PluginHost) -> None:
    # cnn takes no 'activation'; regression does, and -m cnn leaves it out.
    spec = spec_from('models = ["cnn", "regression"]\noptimizers = ["sgd"]\n'
                     '[params]\nactivation = "tanh"', tmp_path)
    assert host.problems.get("cnn").param("activation") is None
    cells = expand(narrowed(spec, "cnn"), host.problems, host.optimizers).cells
    assert cells and all("activation" not in dict(c.params) for c in cells)


# -- integers too long for int() ---------------------------------------------------------
HUGE = "9" * 5000


@pytest.mark.parametrize(("call", "name"), [
    (lambda: parse_seeds(HUGE), "seeds"),
    (lambda: parse_seeds(f"0-{HUGE}"), "seeds"),
    (lambda: parse_seeds("0" * 5000 + "1x"), "seeds"),
    (lambda: parse_int(HUGE, "--steps", 10), "--steps"),
    (lambda: parse_int(f"-{HUGE}", "--steps", 10), "--steps"),
    (lambda: parse_int(int("9" * 4000), "--steps", 10), "--steps"),
    (lambda: parse_set(f"lr={HUGE}"), "--set lr"),
    (lambda: parse_set(f"adam.lr=[1, {HUGE}]"), "--set adam.lr"),
])
def test_too_long_integers_are_one_short_usage_error(call: Any, name: str) -> None:
    with pytest.raises(UsageError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{name}: ") and "\n" not in message and len(message) < 160


def test_too_long_leading_zeros_are_still_a_seed() -> None:
    assert parse_seeds("0" * 5000 + "7") == [7]


@pytest.mark.parametrize(("toml", "where"), [
    (f"steps = {HUGE}\n", "line 1: steps: "),
    (f'models = ["cnn"]\nseeds = [\n  0,\n  {HUGE},\n]\n', "line 4: seeds: "),
    (f"[optimizer.adam]\nlr = -{HUGE}\n", "line 2: optimizer.adam.lr: "),
    (f'[params]\nwidth = 1_{HUGE[1:]}\n', "line 2: params.width: "),
])
def test_a_too_long_integer_in_a_grid_file(toml: str, where: str, tmp_path: Path) -> None:
    path = tmp_path / "grid.toml"
    path.write_text(toml)
    with pytest.raises(UsageError) as info:
        load_grid_file(path)
    message = str(info.value).replace(str(path), "GRID")  # the path's length is the machine's
    assert where in message and "5000 digits" in message and len(message) < 170


# -- devices ---------------------------------------------------------------------------
@pytest.mark.parametrize("devices", [["cpu", " cpu"], ["cpu ", "cpu"], ["cuda:0", "cuda:00"]])
def test_devices_are_compared_once_normalised(devices: list[str], host: PluginHost) -> None:
    spec = GridSpec(models=["regression"], optimizers=["sgd"], devices=devices)
    with pytest.raises(UsageError, match=r"devices: the value .* is listed twice"):
        expand(spec, host.problems, host.optimizers, skip_unavailable=True)


def test_device_names_are_normalised(host: PluginHost) -> None:
    spec = GridSpec(models=["regression"], optimizers=["sgd"], devices=[" cpu", "cuda:01"])
    grid = expand(spec, host.problems, host.optimizers, skip_unavailable=True)
    assert grid.devices == ("cpu", "cuda:1")
    assert {c.device for c in grid.cells} == {"cpu", "cuda:1"}


def test_a_device_index_too_long_for_int(host: PluginHost) -> None:
    spec = GridSpec(models=["regression"], optimizers=["sgd"], devices=[f"cuda:{HUGE}"])
    with pytest.raises(UsageError, match="unknown device") as info:
        expand(spec, host.problems, host.optimizers, skip_unavailable=True)
    assert len(str(info.value)) < 120

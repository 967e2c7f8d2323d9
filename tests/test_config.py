"""Experiment files -> typed config: the shipped files, merging, overrides, every error path."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from galaxyzoo.config.experiment import (
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    config_hash,
    dump_yaml,
    flatten,
    from_dict,
    knobs,
    load_experiment,
    model_kwargs,
)
from galaxyzoo.errors import GalaxyZooError

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
SHIPPED = ("baseline", "improved", "quickstart")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load(name):
    cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
    assert isinstance(cfg, ExperimentConfig)
    assert cfg.name == name
    assert cfg.description


def test_baseline_is_the_seed_setup():
    cfg = load_experiment(EXPERIMENTS / "baseline.yaml")
    d, m, t = cfg.data, cfg.model, cfg.train
    assert (d.image_size, d.channels, d.test_size, d.val_size, d.split_seed) == (106, 1, 0.25, 0.1, 32)
    assert d.source != "synthetic"
    assert m.conv_filters == (32, 64, 128) and m.kernel_size == 3 and m.conv_dropout == 0.2
    assert m.dense_units == (128, 64) and m.dense_dropout == (0.2, 0.0)
    assert m.batch_norm is False and m.head == "sigmoid"
    assert (t.optimizer, t.learning_rate, t.loss, t.batch_size, t.epochs) == ("adam", 0.001, "mse", 2000, 120)
    assert t.augment.enabled is False and t.precision == "float32" and t.distribute == "none"
    cb = t.callbacks
    assert cb.checkpoint is True
    assert (cb.early_stopping.enabled, cb.early_stopping.monitor, cb.early_stopping.patience) == (True, "loss", 7)
    assert cb.early_stopping.restore_best_weights is False
    assert (cb.lr_step.enabled, cb.lr_step.factor, cb.lr_step.every) == (True, 0.8, 10)
    rlr = cb.reduce_lr_on_plateau
    assert (rlr.enabled, rlr.monitor, rlr.factor, rlr.patience) == (True, "loss", 0.1, 5)
    assert (cb.csv_logger.enabled, cb.csv_logger.append) == (True, True)
    # The dataclass defaults are the seed's setup too, so a sparse file starts from it.
    assert m == ModelConfig() and t == TrainConfig()


def test_improved_and_quickstart_only_change_what_they_state():
    base = load_experiment(EXPERIMENTS / "baseline.yaml")
    improved = load_experiment(EXPERIMENTS / "improved.yaml")
    assert improved.train.callbacks.early_stopping.monitor == "val_loss"
    assert improved.train.callbacks.early_stopping.restore_best_weights is True
    assert improved.train.callbacks.reduce_lr_on_plateau.monitor == "val_loss"
    assert improved.train.augment.enabled and improved.train.augment.rot90 and improved.train.augment.flip
    assert (improved.train.augment.blur, improved.train.augment.gamma, improved.train.augment.colour,
            improved.train.augment.noise) == (1.0, 0.4, 0.15, 0.03)  # the domain randomisation
    assert improved.model.batch_norm is True
    assert improved.model.conv_filters == (32, 64, 128, 256)
    assert improved.train.callbacks.lr_step.enabled is False
    # Inherited unchanged, including siblings of changed keys inside a section.
    assert improved.model.kernel_size == base.model.kernel_size
    assert improved.model.dense_dropout == base.model.dense_dropout
    assert improved.train.epochs == base.train.epochs
    assert improved.train.callbacks.early_stopping.enabled is True
    assert improved.train.callbacks.lr_step.factor == base.train.callbacks.lr_step.factor
    assert improved.data.split_seed == base.data.split_seed

    quick = load_experiment(EXPERIMENTS / "quickstart.yaml")
    assert quick.data.source == "synthetic" and quick.data.synthetic_n == 2000
    assert quick.train.epochs <= 10 and quick.train.batch_size <= 128
    assert quick.model == base.model
    assert quick.train.callbacks == base.train.callbacks


def test_base_chain_resolves_relative_to_each_file(tmp_path):
    write(tmp_path / "a" / "root.yaml", "name: root\ndescription: root one\ntrain: {epochs: 50, seed: 3}\n")
    write(tmp_path / "b" / "mid.yaml", "base: ../a/root.yaml\ntrain: {epochs: 20}\nmodel: {batch_norm: true}\n")
    leaf = write(tmp_path / "b" / "c" / "leaf.yaml", "base: ../mid.yaml\ntrain: {batch_size: 8}\n")
    cfg = load_experiment(leaf)
    assert (cfg.train.epochs, cfg.train.seed, cfg.train.batch_size) == (20, 3, 8)
    assert cfg.model.batch_norm is True
    # name and description describe one file: not inherited.
    assert cfg.name == "leaf" and cfg.description == ""


def test_loss_params_are_replaced_whole_but_tags_merge(tmp_path):
    write(
        tmp_path / "base.yaml",
        "train: {loss: dirichlet-multinomial, loss_params: {concentration: 20, eps: 0.1}}\n"
        "tracking: {tags: {owner: a, stage: dev}}\n",
    )
    child = write(
        tmp_path / "child.yaml",
        "base: base.yaml\ntrain: {loss_params: {concentration: 5}}\ntracking: {tags: {stage: prod}}\n",
    )
    cfg = load_experiment(child)
    assert cfg.train.loss_params == {"concentration": 5}
    assert cfg.tracking.tags == {"owner": "a", "stage": "prod"}


def test_overrides_parse_yaml_values_and_nested_keys():
    cfg = load_experiment(
        EXPERIMENTS / "quickstart.yaml",
        [
            "train.epochs=2",
            "model.conv_filters=[16,32]",
            "model.dense_dropout=[0.5, 0]",
            "train.callbacks.early_stopping.monitor=val_loss",
            "train.learning_rate=1e-4",
            "tracking.run_name=smoke test",
            "tracking.tags.owner=me",
            "train.loss_params={concentration: 20}",
            "description=a = b",
        ],
    )
    assert cfg.train.epochs == 2
    assert cfg.model.conv_filters == (16, 32)
    assert cfg.model.dense_dropout == (0.5, 0.0)
    assert cfg.train.callbacks.early_stopping.monitor == "val_loss"
    assert cfg.train.callbacks.early_stopping.patience == 7  # sibling kept
    assert cfg.train.learning_rate == pytest.approx(1e-4)
    assert cfg.tracking.run_name == "smoke test"
    assert cfg.tracking.tags == {"owner": "me"}
    assert cfg.train.loss_params == {"concentration": 20}
    assert cfg.description == "a = b"


def test_numbers_read_as_yaml_1_2(tmp_path):
    """A leading zero is decimal (YAML 1.1 reads `010` as octal 8), in overrides and in files alike."""
    assert load_experiment(EXPERIMENTS / "baseline.yaml", ["train.seed=010"]).train.seed == 10
    path = write(tmp_path / "x.yaml", "base: " + str(EXPERIMENTS / "baseline.yaml") + "\ntrain: {epochs: 0012}\n")
    assert load_experiment(path).train.epochs == 12


def test_minus_zero_is_zero():
    """`-0.0` and `0.0` configure the same training: one config, one hash, one flattened value."""
    minus = load_experiment(EXPERIMENTS / "baseline.yaml", ["model.conv_dropout=-0.0"])
    plus = load_experiment(EXPERIMENTS / "baseline.yaml", ["model.conv_dropout=0.0"])
    assert minus == plus and config_hash(minus) == config_hash(plus)
    assert flatten(minus)["model.conv_dropout"] == "0.0"


def test_synthetic_n_range_is_the_generator_s():
    from galaxyzoo.data.synth.catalogue import MIN_ROWS
    from galaxyzoo.data.synth.generate import MAX_N

    with pytest.raises(GalaxyZooError, match=f"must be in \\[{MIN_ROWS}, {MAX_N}\\]"):
        load_experiment(EXPERIMENTS / "baseline.yaml", [f"data.synthetic_n={MAX_N + 1}"])
    assert load_experiment(EXPERIMENTS / "baseline.yaml", [f"data.synthetic_n={MIN_ROWS}"]).data.synthetic_n == MIN_ROWS


def test_short_aliases_and_later_overrides_win():
    cfg = load_experiment(
        EXPERIMENTS / "baseline.yaml",
        ["epochs=3", "batch_size=16", "augment=true", "channels=3", "source=synthetic", "epochs=4"],
    )
    assert cfg.train.epochs == 4 and cfg.train.batch_size == 16
    assert cfg.train.augment.enabled is True
    assert cfg.data.channels == 3 and cfg.data.source == "synthetic"
    assert model_kwargs(cfg)["channels"] == 3


def test_model_kwargs_are_build_model_arguments_and_follow_the_data():
    cfg = load_experiment(EXPERIMENTS / "baseline.yaml", ["image_size=64", "channels=3"])
    kwargs = model_kwargs(cfg)
    assert set(kwargs) == {
        "input_size", "channels", "conv_filters", "kernel_size", "convs_per_block", "conv_dropout",
        "dense_units", "dense_dropout", "batch_norm", "head", "dirichlet_components", "concentration_ceiling",
    }  # fmt: skip
    assert (kwargs["input_size"], kwargs["channels"]) == (64, 3)
    assert kwargs["conv_filters"] == [32, 64, 128] and isinstance(kwargs["dense_dropout"], list)


BAD_VALUES = [
    ("train: {epochs: ten}", "train.epochs: expected an integer, got 'ten'"),
    ("train: {epochs: true}", "train.epochs: expected an integer, got true"),
    ("train: {epochs: 0}", "train.epochs: must be at least 1"),
    ("train: {batch_size: 2.5}", "train.batch_size: expected an integer, got 2.5"),
    ("train: {learning_rate: -0.1}", "train.learning_rate: must be greater than 0"),
    ("train: {learning_rate: fast}", "train.learning_rate: expected a number, got 'fast'"),
    ("train: {loss: mae}", "train.loss: expected one of 'mse', 'vote-weighted-mse'"),
    ("train: {optimizer: adagrad}", "train.optimizer: expected one of"),
    ("train: {distribute: tpu}", "train.distribute: expected one of"),
    ("train: 3", "train: expected a mapping with keys epochs"),
    ("train: {callbacks: {early_stopping: {monitor: r2_flat}}}", "train.callbacks.early_stopping.monitor"),
    ("train: {callbacks: {lr_step: {factor: 1.5}}}", "train.callbacks.lr_step.factor: must be in (0, 1)"),
    ("train: {callbacks: {checkpoint: 1}}", "train.callbacks.checkpoint: expected true or false, got 1"),
    ("train: {augment: {enabled: true, rot90: false, flip: false, shift_px: 0}}", "train.augment.enabled"),
    ("train: {augment: {zoom: 1.5}}", "train.augment.zoom: must be in [0, 1)"),
    ("train: {augment: {blur: -1}}", "train.augment.blur: must be in [0, 4], got -1"),
    ("train: {augment: {noise: 0.5}}", "train.augment.noise: must be in [0, 0.2], got 0.5"),
    ("train: {augment: {gamma: 1}}", "train.augment.gamma: must be in [0, 1)"),
    ("train: {augment: {colour: dull}}", "train.augment.colour: expected a number, got 'dull'"),
    ("train: {augment: {shift_px: 60}}", "train.augment.shift_px: must be less than half"),
    ("model: {conv_dropout: 1.0}", "model.conv_dropout: must be in [0, 1), got 1.0"),
    ("model: {dense_dropout: [0.2, -0.1]}", "model.dense_dropout[1]: must be in [0, 1)"),
    ("model: {dense_dropout: [0.2]}", "model.dense_dropout: has 1 values but model.dense_units has 2"),
    ("model: {conv_filters: [32, 0]}", "model.conv_filters[1]: must be at least 1"),
    ("model: {conv_filters: []}", "model.conv_filters: must not be empty"),
    ("model: {conv_filters: 32}", "model.conv_filters: expected a list of integers, got 32"),
    ("model: {head: softmax}", "model.head: expected one of 'sigmoid', 'softmax-per-question'"),
    ("model: {batch_norm: 'yes'}", "model.batch_norm: expected true or false, got 'yes'"),
    ("model: {input_size: 106}", "unknown key 'model.input_size' (did you mean 'data.image_size'?)"),
    ("data: {channels: 2}", "data.channels: expected one of 1, 3, got 2"),
    ("data: {test_size: 0}", "data.test_size: must be in (0, 1), got 0.0"),
    ("data: {test_size: 1.5}", "data.test_size: must be in (0, 1)"),
    ("data: {val_size: -0.1}", "data.val_size: must be in [0, 1)"),
    ("data: {image_size: 16}", "model.conv_filters: 3 conv blocks of 1 conv(s) with kernel 3 shrink a 16px image"),
    ("model: {convs_per_block: 3}\ndata: {image_size: 32}", "model.conv_filters: 3 conv blocks of 3 conv(s)"),
    ("model: {convs_per_block: 0}", "model.convs_per_block: must be at least 1"),
    ("train: {callbacks: {cosine_decay: {min_factor: 1.0}}}", "train.callbacks.cosine_decay.min_factor: must be in [0, 1)"),
    ("data: {source: ''}", "data.source: must not be empty"),
    (
        "data: {val_size: 0}\ntrain: {callbacks: {early_stopping: {monitor: val_loss}}}",
        "train.callbacks.early_stopping.monitor: 'val_loss' needs a validation set",
    ),
    ("warm_start: {init_from: runs:/x/model, freeze_blocks: 4}",
     "warm_start.freeze_blocks: must be at most the 3 conv blocks of model.conv_filters, got 4"),
    ("tracking: {tags: {version: 2}}", "tracking.tags.version: expected a string, got 2"),
    ("tracking: {tags: {yes: shipped}}", "tracking.tags.True: keys must be strings (quote it), got true"),
    ("train: {loss_params: &x {a: [*x]}}", "a recursive alias: a value that holds itself"),
    ("train: {learning_rate: '1e-3'}", "train.learning_rate: expected a number, got '1e-3'"),
    ("train: {learning_rate: 1" + "0" * 400 + "}", "train.learning_rate: expected a number, got 1000"),
    ("tracking: {run_name: 5}", "tracking.run_name: expected a string, got 5"),
    ("name: my run", "name: must be letters, digits"),
    ("train: {epoch: 5}", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
    ("train: {mixed_precision: fp16}", "unknown key 'train.mixed_precision' (replaced by 'train.precision':"),
    ("train: {precision: bf16}", "train.precision: expected one of 'auto', 'float32', 'bfloat16', 'float16'"),
    ("train: {image_size: 5}", "unknown key 'train.image_size' (did you mean 'data.image_size'?)"),
    (
        "train: {monitor: loss}",
        "(did you mean one of 'train.callbacks.early_stopping.monitor', "
        "'train.callbacks.reduce_lr_on_plateau.monitor'?)",
    ),
    ("traning: {epochs: 5}", "unknown key 'traning' (did you mean 'train'?)"),
    ("train: {callbacks: {early_stoping: {}}}", "did you mean 'train.callbacks.early_stopping'?"),
    ("train: {on: 5}", "keys must be strings"),
    ("train: {epochs: 5, epochs: 6}", "duplicate key 'epochs'"),
    ("train: {epochs: [5}", "not valid YAML: line 1"),
    ("- train", "expected a mapping of keys at the top level"),
    ("base: 3", "base: expected the name of another experiment file"),
    ("base: nowhere.yaml", "base: file not found"),
]


@pytest.mark.parametrize("text, expected", BAD_VALUES)
def test_bad_files_name_the_file_and_key(tmp_path, text, expected):
    path = write(tmp_path / "bad.yaml", text + "\n")
    with pytest.raises(GalaxyZooError) as err:
        load_experiment(path)
    message = str(err.value)
    assert message.startswith(f"{path}:"), message
    assert expected in message, message


@pytest.mark.parametrize("old, precision", [("true", "float16"), ("false", "float32")])
def test_a_file_from_before_precision_reads_its_mixed_precision(tmp_path, caplog, old, precision):
    """An older run's config.yaml says `train.mixed_precision`: it still loads (evaluate, promote, predict)."""
    path = write(tmp_path / "config.yaml", f"train: {{mixed_precision: {old}, epochs: 2}}\n")
    with caplog.at_level("WARNING", logger="galaxyzoo.config.experiment"):
        cfg = load_experiment(path)
    assert cfg.train.precision == precision and cfg.train.epochs == 2
    assert f"{path}: train.mixed_precision is replaced by train.precision" in caplog.text


def test_errors_name_the_file_that_set_the_key(tmp_path):
    write(tmp_path / "base.yaml", "train: {epochs: ten}\n")
    child = write(tmp_path / "child.yaml", "base: base.yaml\nmodel: {batch_norm: true}\n")
    with pytest.raises(GalaxyZooError, match=r"base\.yaml: train\.epochs: expected an integer"):
        load_experiment(child)
    # An override that fixes the value fixes the config.
    assert load_experiment(child, ["train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train.epochs=ten", "(override 'train.epochs=ten'): train.epochs: expected an integer, got 'ten'"),
        ("train.epoch=2", "unknown key 'train.epoch' (did you mean 'train.epochs'?)"),
        ("epoch=2", "unknown key 'epoch' (did you mean 'epochs'?)"),
        ("mixed_precision=true", "unknown key 'mixed_precision' (replaced by 'precision': auto, float32"),
        ("train.epochs", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("model.conv_filters=[16,", "model.conv_filters: value is not valid YAML"),
        ("model.dense_dropout=[0.1]", "model.dense_dropout: has 1 values"),
        # numbers NumPy or the generator would refuse only after the data stages ran
        ("train.seed=4294967296", "train.seed: must be in [0, 4294967295], got 4294967296"),
        ("data.synthetic_n=5", "data.synthetic_n: must be in [10, 200000], got 5"),
        # YAML 1.1's hex and base 60 are text here, so the check names them instead of training on 16 or 90
        ("train.seed=0x10", "train.seed: expected an integer, got '0x10'"),
        ("train.epochs=1:30", "train.epochs: expected an integer, got '1:30'"),
    ],
)
def test_bad_overrides_name_the_file_override_and_key(override, expected):
    path = EXPERIMENTS / "baseline.yaml"
    with pytest.raises(GalaxyZooError) as err:
        load_experiment(path, [override])
    message = str(err.value)
    assert str(path) in message and expected in message, message


def test_cycles_in_base_are_reported(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(GalaxyZooError, match="makes a cycle"):
        load_experiment(tmp_path / "a.yaml")


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(GalaxyZooError, match="experiment file not found"):
        load_experiment(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", SHIPPED)
def test_flatten_round_trips_through_overrides(tmp_path, name):
    cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
    flat = flatten(cfg)
    assert all(isinstance(v, str) for v in flat.values())
    assert flat["train.epochs"] == str(cfg.train.epochs)
    # An empty file is refused; a file of one key that the overrides replace starts from the defaults.
    blank = write(tmp_path / "blank.yaml", "description: ''\n")
    rebuilt = load_experiment(blank, [f"{key}={value}" for key, value in flat.items()])
    assert rebuilt == cfg


@pytest.mark.parametrize("text", ["null", "2", "08", "-.5", "+.5", "010", "1:30", "0x10", "1e5", "1_000", ".inf"])
def test_strings_that_look_like_numbers_survive_flatten_and_dump_yaml(tmp_path, text):
    """What a run writes (its config.yaml, its params as overrides) reads back the same: a string either
    YAML reader would take for a number is quoted (`08` and `-.5` are numbers in YAML 1.2, `010` in 1.1)."""
    path = write(tmp_path / "x.yaml", f"tracking: {{run_name: {text!r}, tags: {{v: {text!r}}}}}\n"
                                      f"description: 'a: b {text}'\n")
    cfg = load_experiment(path)
    assert cfg.tracking.run_name == text and cfg.tracking.tags == {"v": text}
    blank = write(tmp_path / "e.yaml", "description: ''\n")
    assert load_experiment(blank, [f"{k}={v}" for k, v in flatten(cfg).items()]) == cfg
    assert load_experiment(dump_yaml(cfg, tmp_path / "run" / "config.yaml")) == cfg


@pytest.mark.parametrize("text", ["train: {seed: !!int 0x10}", "train: {seed: !!int ''}",
                                  "train: {learning_rate: !!float x}"])
def test_an_explicit_number_tag_on_text_is_a_yaml_error_naming_the_line(tmp_path, text):
    path = write(tmp_path / "x.yaml", f"description: d\n{text}\n")
    with pytest.raises(GalaxyZooError, match=r"x\.yaml: not valid YAML: line 2, column \d+: .* is not a"):
        load_experiment(path)


@pytest.mark.parametrize("name", SHIPPED)
def test_dump_yaml_round_trips(tmp_path, name):
    cfg = load_experiment(EXPERIMENTS / f"{name}.yaml")
    out = dump_yaml(cfg, tmp_path / "run" / "config.yaml")
    assert "base:" not in out.read_text()
    assert load_experiment(out) == cfg


def test_dump_yaml_appends_what_was_built_as_comments(tmp_path):
    cfg = load_experiment(EXPERIMENTS / "quickstart.yaml")
    out = dump_yaml(cfg, tmp_path / "config.yaml", built={"callback.lr_step": "LrStep(factor=0.8, every=10)"})
    assert "#   callback.lr_step: LrStep(factor=0.8, every=10)" in out.read_text()
    assert load_experiment(out) == cfg


def test_knobs_are_the_training_settings_only():
    cfg = load_experiment(EXPERIMENTS / "quickstart.yaml", ["tracking.run_name=x", "description=about it"])
    params = knobs(cfg)
    assert set(params) == {k for k in flatten(cfg) if not k.startswith(("warm_start.", "evaluate.", "tracking."))
                           and k not in ("name", "description", "data.workdir")}
    assert params["train.epochs"] == flatten(cfg)["train.epochs"] and len(params) == 54
    assert cfg.tracking.system_metrics is True  # on unless switched off
    assert load_experiment(EXPERIMENTS / "quickstart.yaml", ["tracking.system_metrics=false"]).tracking \
        .system_metrics is False


def test_config_hash_is_stable_and_tracks_training_settings(tmp_path):
    baseline = load_experiment(EXPERIMENTS / "baseline.yaml")
    h = config_hash(baseline)
    assert len(h) == 12 and int(h, 16) >= 0
    assert config_hash(load_experiment(EXPERIMENTS / "baseline.yaml")) == h
    # Same settings written in another order, under another name and tracking: same hash.
    dumped = dump_yaml(baseline, tmp_path / "d.yaml").read_text().splitlines(keepends=True)
    reordered = write(tmp_path / "other.yaml", "".join(reversed(_sections(dumped))))
    renamed = load_experiment(reordered, ["name=other", "tracking.run_name=x", "tracking.tags.a=b"])
    assert config_hash(renamed) == h
    assert config_hash(load_experiment(EXPERIMENTS / "baseline.yaml", ["train.epochs=119"])) != h
    assert config_hash(load_experiment(EXPERIMENTS / "baseline.yaml", ["model.batch_norm=true"])) != h
    # An unused warm_start section leaves the hash as it was before the section existed; a used one changes it.
    assert h == "f3fc95777c22"
    assert config_hash(load_experiment(EXPERIMENTS / "baseline.yaml", ["init_from=runs:/x/model"])) != h
    # So do settings added later, at their defaults; changed, they count.
    for added in ("model.convs_per_block=2", "train.callbacks.cosine_decay.enabled=true",
                  "train.callbacks.cosine_decay.min_factor=0.1", "train.augment.zoom=0.2",
                  "train.augment.blur=1", "train.augment.gamma=0.3", "train.augment.colour=0.1", "train.augment.noise=0.02"):
        assert config_hash(load_experiment(EXPERIMENTS / "baseline.yaml", [added])) != h, added
    assert len({config_hash(load_experiment(EXPERIMENTS / f"{n}.yaml")) for n in SHIPPED}) == 3


def _sections(lines: list[str]) -> list[str]:
    """Split a block-style YAML document into its top-level sections (comment lines dropped)."""
    sections: list[str] = []
    for line in lines:
        if line.startswith("#"):
            continue
        if line[:1].isspace() and sections:
            sections[-1] += line
        else:
            sections.append(line)
    return sections


def test_config_is_frozen():
    cfg = from_dict({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.epochs = 3  # type: ignore[misc]


def test_from_dict_names_its_source():
    with pytest.raises(GalaxyZooError, match=r"^sweep trial 3: train\.epochs: must be at least 1"):
        from_dict({"train": {"epochs": -1}}, source="sweep trial 3")


def test_docs_describe_every_key():
    docs = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    missing = [key for key in flatten(from_dict({})) if f"`{key}`" not in docs]
    assert not missing, f"docs/experiments.md does not describe: {missing}"


def test_importing_config_does_not_import_tensorflow():
    code = ("import sys, galaxyzoo.config.experiment, galaxyzoo.config.sweep_spec; "
            "sys.exit('tensorflow' in sys.modules or 'keras' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0

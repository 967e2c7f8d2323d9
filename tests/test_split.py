"""`galaxyzoo split`: the seed's stratified train/test split plus a validation part, saved and reloaded."""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from galaxyzoo import schema
from galaxyzoo.cli import main
from galaxyzoo.errors import GalaxyZooError
from galaxyzoo.data.split import load_split, make_split, split_id


def write_galaxy_data(db, asset_ids, classes) -> None:
    """A minimal galaxy_data table: the columns split reads, plus one target, in the given row order."""
    frame = pd.DataFrame({
        "asset_id": np.asarray(asset_ids, dtype=np.int64),
        "class_reduced": list(classes),
        schema.target_columns()[0]: np.linspace(0, 1, len(asset_ids)),
    })
    conn = sqlite3.connect(db)
    frame.to_sql("galaxy_data", conn, index=False, if_exists="replace")
    conn.close()


def catalogue(n_classes=25, seed=0):
    """Asset ids in a shuffled (not sorted) table order and class labels of very different sizes."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(4, 200, n_classes)
    classes = np.repeat([f"C{i}" for i in range(n_classes)], sizes)
    order = rng.permutation(len(classes))
    asset_ids = rng.choice(np.arange(3, 10 * len(classes)), len(classes), replace=False)
    return asset_ids, classes[order]


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "galaxy.sqlite"
    write_galaxy_data(path, *catalogue())
    return path


def test_train_test_is_the_seeds_split_exactly(db):
    asset_ids, classes = catalogue()
    info = make_split(db)
    # The seed: train_test_split(asset_id Series, targets DataFrame, random_state=32, stratify=class_reduced).
    targets = pd.DataFrame(np.zeros((len(asset_ids), 37)))
    seed_train, seed_test, _, _ = train_test_split(
        pd.Series(asset_ids), targets, random_state=32, stratify=classes
    )
    np.testing.assert_array_equal(info.test, seed_test.to_numpy())
    assert sorted(np.concatenate([info.train, info.val])) == sorted(seed_train)
    # Validation: val_size of that train part, same seed, stratified on its labels.
    label_of = dict(zip(asset_ids, classes))
    train, val = train_test_split(
        seed_train.to_numpy(), test_size=0.1, random_state=32, stratify=[label_of[a] for a in seed_train]
    )
    np.testing.assert_array_equal(info.train, train)
    np.testing.assert_array_equal(info.val, val)
    assert info.stratified_test and info.stratified_val


def test_split_follows_table_order(tmp_path):
    asset_ids, classes = catalogue()
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    write_galaxy_data(a, asset_ids, classes)
    order = np.argsort(asset_ids)
    write_galaxy_data(b, asset_ids[order], classes[order])
    # Same rows, other order: another assignment (the seed's depends on its DataFrame order).
    assert make_split(a).id != make_split(b).id


def test_counts_partition_and_stratification(db):
    asset_ids, classes = catalogue()
    n = len(asset_ids)
    info = make_split(db, test_size=0.25, val_size=0.1)
    n_test = int(np.ceil(0.25 * n))
    n_val = int(np.ceil(0.1 * (n - n_test)))
    assert info.counts == {"train": n - n_test - n_val, "val": n_val, "test": n_test}
    everything = np.concatenate([info.train, info.val, info.test])
    assert len(set(everything)) == n and set(everything) == set(asset_ids)
    label_of = dict(zip(asset_ids, classes))
    for part, share in (("test", 0.25), ("val", 0.075)):
        got = pd.Series([label_of[a] for a in getattr(info, part)]).value_counts()
        expected = pd.Series(classes).value_counts() * share
        assert (abs(got.reindex(expected.index, fill_value=0) - expected) <= 1).all(), part


def test_saved_tables_and_reload(db):
    info = make_split(db)
    again = load_split(db)
    assert again.id == info.id == split_id(info.train, info.val, info.test)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(again, part), getattr(info, part))
    assert (again.test_size, again.val_size, again.seed) == (0.25, 0.1, 32)

    conn = sqlite3.connect(db)
    rows = pd.read_sql_query("SELECT asset_id, split, position FROM split", conn)
    meta = pd.read_sql_query("SELECT * FROM split_meta", conn)
    conn.close()
    assert rows["split"].value_counts().to_dict() == info.counts
    test_rows = rows[rows["split"] == "test"].sort_values("position")
    assert test_rows["asset_id"].tolist() == info.test.tolist()
    assert test_rows["position"].tolist() == list(range(len(info.test)))
    assert meta.loc[0, ["id", "n_train", "n_val", "n_test", "seed"]].tolist() == [
        info.id, *info.counts.values(), 32
    ]


def test_same_parameters_same_id_and_different_ones_need_overwrite(db):
    first = make_split(db)
    second = make_split(db)
    assert second.id == first.id and second.created == first.created, "kept, not rewritten"
    with pytest.raises(GalaxyZooError, match=rf"already holds split {first.id} .*seed=32.*--overwrite"):
        make_split(db, random_state=7)
    assert load_split(db).id == first.id
    other = make_split(db, random_state=7, overwrite=True)
    assert other.id != first.id and load_split(db).id == other.id
    assert make_split(db, random_state=7).id == other.id


def test_changed_table_is_named_in_the_error(db, tmp_path):
    first = make_split(db)
    asset_ids, classes = catalogue()
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM galaxy_data WHERE asset_id = ?", (int(asset_ids[0]),))
    conn.commit()
    conn.close()
    with pytest.raises(GalaxyZooError, match=rf"{first.id} .*because galaxy_data changed"):
        make_split(db)


def test_split_id_ignores_order():
    assert split_id(np.array([3, 1]), np.array([5]), np.array([9, 7])) == split_id(
        np.array([1, 3]), np.array([5]), np.array([7, 9])
    )
    assert split_id(np.array([1, 3]), np.array([5]), np.array([7, 9])) != split_id(
        np.array([1, 5]), np.array([3]), np.array([7, 9])
    )


def test_falls_back_to_unstratified_with_a_warning(tmp_path, caplog):
    db = tmp_path / "tiny.sqlite"
    # "Lone" has a single member: neither split can be stratified on it.
    write_galaxy_data(db, range(100, 140), ["A"] * 20 + ["B"] * 19 + ["Lone"])
    with caplog.at_level(logging.WARNING, logger="galaxyzoo.data.split"):
        info = make_split(db)
    assert not info.stratified_test and not info.stratified_val
    assert "test split is not stratified" in caplog.text and "val split is not stratified" in caplog.text
    expected_train, expected_test = train_test_split(np.arange(100, 140), test_size=0.25, random_state=32)
    np.testing.assert_array_equal(info.test, expected_test)
    assert info.counts == {"train": 27, "val": 3, "test": 10}


def test_val_only_falls_back(tmp_path, caplog):
    db = tmp_path / "small.sqlite"
    # 12 classes x 4 rows: the test part (12 rows) can hold every class, val (4 of 36) cannot.
    write_galaxy_data(db, range(48), [f"C{i // 4}" for i in range(48)])
    with caplog.at_level(logging.WARNING, logger="galaxyzoo.data.split"):
        info = make_split(db)
    assert info.stratified_test and not info.stratified_val
    assert "val split is not stratified" in caplog.text and "test split" not in caplog.text


def test_no_validation_part(db):
    info = make_split(db, val_size=0)
    assert len(info.val) == 0 and info.stratified_val
    assert len(load_split(db).val) == 0


@pytest.mark.parametrize(
    "kwargs, pattern",
    [({"test_size": 0}, "test size must be a fraction"), ({"test_size": 1.5}, "test size must be a fraction"),
     ({"val_size": -0.1}, r"val size must be a fraction"), ({"val_size": 1}, r"val size must be a fraction"),
     ({"random_state": -1}, r"--seed must be a whole number from 0 to 4294967295, got -1"),
     ({"random_state": 2**40}, r"--seed must be a whole number from 0 to 4294967295")],
)
def test_bad_sizes(db, kwargs, pattern):
    with pytest.raises(GalaxyZooError, match=pattern):
        make_split(db, **kwargs)


def test_too_few_rows(tmp_path):
    db = tmp_path / "one.sqlite"
    write_galaxy_data(db, [5], ["A"])
    with pytest.raises(GalaxyZooError, match=r"test split of 1 rows with size 0.25 is impossible"):
        make_split(db)


def test_missing_split_or_table(db, tmp_path):
    with pytest.raises(GalaxyZooError, match=r"no split saved .*galaxyzoo split --db"):
        load_split(db)
    with pytest.raises(GalaxyZooError, match="database not found"):
        make_split(tmp_path / "absent.sqlite")
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.close()
    with pytest.raises(GalaxyZooError, match="no galaxy_data table"):
        make_split(other)


def test_cli_split(db, capsys):
    assert main(["split", "--db", str(db)]) == 0
    out = capsys.readouterr().out.strip()
    info = load_split(db)
    assert out.startswith(f"split {info.id}: train ") and "seed=32, stratified" in out
    assert main(["split", "--db", str(db), "--seed", "32"]) == 0
    capsys.readouterr()
    assert main(["split", "--db", str(db), "--seed", "3", "--val-size", "0.2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("galaxyzoo: error: ") and "--overwrite" in err[0]
    assert main(["split", "--db", str(db), "--seed", "3", "--val-size", "0.2", "--overwrite"]) == 0
    assert load_split(db).seed == 3 and load_split(db).val_size == 0.2

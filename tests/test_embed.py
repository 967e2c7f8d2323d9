"""`galaxyzoo embed` and `galaxyzoo similar`: features before the head, and nearest galaxies by them."""

import numpy as np
import pandas as pd
import pytest

from galaxyzoo.cli import main
from galaxyzoo.config.experiment import HEADS
from galaxyzoo.registry import embed
from galaxyzoo.registry.crops import preprocess

MODEL = "models:/predict-test@champion"  # the `champion` fixture (conftest.py)


@pytest.mark.parametrize("head", HEADS)
def test_embedding_model_is_the_network_before_its_head(head):
    from galaxyzoo.model.network import build_model, embedding_model

    network = build_model(input_size=16, conv_filters=(4,), dense_units=(8, 6), dense_dropout=(0.0, 0.2), head=head)
    encoder = embedding_model(network)
    assert encoder.output_shape == (None, 6)
    crops = np.random.default_rng(0).random((3, 16, 16, 1), dtype=np.float32)
    features = encoder.predict(crops, verbose=0)
    # The head alone on the features gives the whole network's output.
    head_layers = [layer for layer in network.layers if layer.name in ("logits", "answers")]
    out = features
    for layer in head_layers:
        out = layer(out)
    np.testing.assert_allclose(np.asarray(out), network.predict(crops, verbose=0), rtol=1e-6, atol=1e-6)


def test_rows_follow_the_inputs_and_equal_the_sub_model(champion, real_images_dir, tmp_path, capsys):
    import mlflow

    from galaxyzoo.model.network import embedding_model

    uri, run_id = champion
    jpgs = sorted(real_images_dir.glob("*.jpg"))
    folder = tmp_path / "in"
    folder.mkdir()
    for f in jpgs[:2]:
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    first, missing = jpgs[5], tmp_path / "missing.jpg"
    inputs = [str(first), str(folder), str(missing), str(folder / jpgs[0].name)]  # the last is named twice
    out = tmp_path / "emb.parquet"
    assert main(["embed", "--model", MODEL, *inputs, "--out", str(out), "--tracking-uri", uri]) == 0
    captured = capsys.readouterr()
    assert "3 of 5 images embedded" in captured.out and "broken.jpg: not a readable image" in captured.err
    table = pd.read_parquet(out)
    expected = [first, folder / jpgs[0].name, folder / jpgs[1].name, folder / "broken.jpg", missing]
    assert list(table["file"]) == [str(p) for p in expected]
    n = table.shape[1] - 2
    assert list(table.columns) == ["file", "error", *(f"e{i}" for i in range(n))]
    assert table.loc[3, "error"].startswith("not a readable image")
    assert table.loc[4, "error"].startswith("cannot read the file")
    features = table[[f"e{i}" for i in range(n)]].to_numpy()
    assert np.isnan(features[3:]).all() and (table.loc[:2, "error"] == "").all()
    # The same crop and scaling as predict, then the training run's network up to its head.
    network = mlflow.keras.load_model(f"runs:/{run_id}/model", dst_path=str(tmp_path))
    crops = np.stack([preprocess(p.read_bytes(), 32, 1)[0] for p in expected[:3]])
    np.testing.assert_allclose(features[:3], embedding_model(network).predict(crops, verbose=0), atol=1e-5)

    # .npy: the same matrix, its rows named by the index CSV
    summary = embed.embed_files(MODEL, inputs, tmp_path / "emb.npy", progress=False, chunk=2)
    assert summary.index == tmp_path / "emb.npy.index.csv" and summary.dims == n and len(summary.failed) == 2
    matrix = np.load(tmp_path / "emb.npy")  # other batches (chunk=2): equal up to float rounding
    assert matrix.dtype == np.float32 and matrix.shape == features.shape
    np.testing.assert_allclose(matrix, features, atol=1e-6)
    index = pd.read_csv(summary.index, keep_default_na=False)
    assert list(index.columns) == ["file", "error"] and list(index["file"]) == list(table["file"])
    # Through a link the matrix and its index both land beside the link's target, where `similar` looks
    (tmp_path / "kept").mkdir()
    (tmp_path / "link.npy").symlink_to(tmp_path / "kept" / "emb.npy")
    linked = embed.embed_files(MODEL, inputs[:2], tmp_path / "link.npy", progress=False)
    assert linked.index == tmp_path / "kept" / "emb.npy.index.csv" and linked.index.is_file()
    rows = len(pd.read_csv(linked.index))
    assert (tmp_path / "link.npy").is_symlink() and np.load(tmp_path / "link.npy").shape[0] == rows


def test_refuses_a_bad_out_before_loading_any_model(real_images_dir, tmp_path, capsys):
    image = str(sorted(real_images_dir.glob("*.jpg"))[0])
    no_model = ["--model", "models:/no-such-model@champion", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]
    assert main(["embed", image, "--out", str(tmp_path / "emb.csv"), *no_model]) == 2
    assert "expected a .parquet or .npy file, got '.csv'" in capsys.readouterr().err
    (tmp_path / "emb.npy.index.csv").write_text("earlier\n")
    assert main(["embed", image, "--out", str(tmp_path / "emb.npy"), *no_model]) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'emb.npy.index.csv'}: the file exists; pass --overwrite" in err
    assert len(err.splitlines()) == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy.index.csv"]


@pytest.fixture
def hand_made(tmp_path):
    """An embeddings .npy + index: q, then rows at growing angles from it, and a failed row."""
    files = ["imgs/b.jpg", "imgs/q.jpg", "imgs/far.jpg", "imgs/bad.jpg", "imgs/a.jpg"]
    features = np.array([[1, 1], [1, 0], [0, 1], [np.nan, np.nan], [3, 0.3]], dtype=np.float32)
    np.save(tmp_path / "emb.npy", features)
    pd.DataFrame({"file": files, "error": ["", "", "", "cannot read the file", ""]}).to_csv(
        tmp_path / "emb.npy.index.csv", index=False)
    return tmp_path / "emb.npy"


def test_similar_lists_the_query_then_its_nearest(hand_made, capsys):
    from galaxyzoo.registry.similar import similar

    table = similar(hand_made, "q", k=5)  # by stem; the failed row is nobody's neighbour
    assert list(table["file"]) == ["imgs/q.jpg", "imgs/a.jpg", "imgs/b.jpg", "imgs/far.jpg"]
    assert table.loc[0, "distance"] == 0 and table["distance"].is_monotonic_increasing
    np.testing.assert_allclose(table.loc[2, "distance"], 1 - np.sqrt(0.5), atol=1e-6)
    # the same rows as Parquet: the same answer
    from galaxyzoo.registry.embeddings import read_embeddings, write_embeddings

    parquet = hand_made.with_suffix(".parquet")
    write_embeddings([parquet], ".parquet", *read_embeddings(hand_made))
    pd.testing.assert_frame_equal(similar(parquet, "q.jpg", k=5), table)
    assert main(["similar", "--embeddings", str(hand_made), "--query", "imgs/a.jpg", "-k", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and lines[1].split() == ["0", "imgs/a.jpg", "0.0000"] and "imgs/q.jpg" in lines[2]


@pytest.mark.parametrize("args, message", [
    (["--query", "nobody"], "--query nobody: no row of {file} has that file, name or stem"),
    (["--query", "bad.jpg"], "--query bad.jpg: its image has no embedding in {file} (cannot read the file)"),
    (["--query", "q", "-k", "0"], "-k: must be at least 1, got 0"),
])
def test_similar_bad_input_is_one_line(hand_made, capsys, args, message):
    assert main(["similar", "--embeddings", str(hand_made), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"galaxyzoo: error: {message.format(file=hand_made)}\n"


def test_similar_refuses_a_file_embed_did_not_write(tmp_path, capsys):
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1.0]}).to_parquet(other)
    (tmp_path / "lonely.npy").write_bytes(b"")
    featureless = tmp_path / "featureless.parquet"  # the index columns only
    pd.DataFrame({"file": ["q.jpg"], "error": [""]}).to_parquet(featureless)
    joined = tmp_path / "joined.parquet"  # a label joined in would have moved every distance
    pd.DataFrame({"file": ["q.jpg"], "error": [""], "e0": [1.0], "e1": [0.5], "redshift": [0.1]}).to_parquet(joined)
    numbered = tmp_path / "numbered.parquet"
    pd.DataFrame({"file": [7], "error": [""], "e0": [1.0]}).to_parquet(numbered)
    words = tmp_path / "words.npy"
    np.save(words, np.array([["a", "b"]]))
    pd.DataFrame({"file": ["q.jpg"], "error": [""]}).to_csv(tmp_path / "words.npy.index.csv", index=False)
    complex_ = tmp_path / "complex.npy"
    np.save(complex_, np.array([[1 + 2j, 3 + 4j]]))
    pd.DataFrame({"file": ["q.jpg"], "error": [""]}).to_csv(tmp_path / "complex.npy.index.csv", index=False)
    unnamed = tmp_path / "unnamed.parquet"  # features only: the missing index columns are what is wrong
    pd.DataFrame({"e0": [1.0], "e1": [2.0], "e2": [3.0]}).to_parquet(unnamed)
    for path, why in ((other, "expected text columns file, error first"), (tmp_path / "lonely.npy", "no such file"),
                      (complex_, "its values are complex128, not real numbers"),
                      (unnamed, "expected text columns file, error first"),
                      (featureless, "(1, 0) features for the 1 rows"),
                      (joined, "expected only the features e0, e1, ... in order, found 'e0', 'e1', 'redshift'"),
                      (numbered, "expected text columns file, error first"),
                      (words, "not a readable .npy embeddings file")):
        assert main(["similar", "--embeddings", str(path), "--query", "q"]) == 2
        err = capsys.readouterr().err
        assert why in err and len(err.splitlines()) == 1

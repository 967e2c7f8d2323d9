"""Ingest and split on real catalogue values: 300 real gz2_hart16 rows (tests/data/real/).

The real rows carry what the synthetic sample only imitates: real `gz2_class`
strings (`Sb?t`, `SBb2m`, `Ser`, odd features in brackets), debiased fractions
that do not sum to 1, the float32-rounded values of the public copy. The
mapping file and the images are made here (the real rows come without them),
with the real release's quirks: duplicated objids above asset_id 295306, rows
without an image and images without a row.
"""

import numpy as np
import pandas as pd
import pytest

from galaxyzoo import schema
from galaxyzoo.data import ingest
from galaxyzoo.data import split

MISSING_IMAGES = 12  # real rows whose image is absent
STRAY_IMAGES = 3  # images that no row names
DUPLICATES = 5  # mapping rows repeating an objid, all above asset_id 295306


@pytest.fixture(scope="module")
def real_rows(real_dir) -> pd.DataFrame:
    return pd.read_csv(real_dir / "gz2_catalogue" / "gz2_hart16_first300.csv")


@pytest.fixture(scope="module")
def ingested(real_dir, real_rows, tmp_path_factory):
    """(raw folder, DB, report, galaxy_data) for the real rows with a made-up mapping and images."""
    raw = tmp_path_factory.mktemp("real-catalogue") / "raw"
    (raw / "images").mkdir(parents=True)
    (raw / ingest.HART16_FILE).write_bytes((real_dir / "gz2_catalogue" / "gz2_hart16_first300.csv").read_bytes())
    objids = real_rows["dr7objid"].to_numpy()
    asset_ids = np.arange(1, len(objids) + 1)
    mapping = pd.DataFrame({"objid": objids, "sample": real_rows["sample"], "asset_id": asset_ids})
    dupes = pd.DataFrame({"objid": objids[:DUPLICATES], "sample": "original",
                          "asset_id": ingest.FIRST_DUPLICATE_ASSET_ID + np.arange(DUPLICATES)})
    pd.concat([mapping, dupes]).to_csv(raw / ingest.MAPPING_FILE, index=False)
    # ingest checks that each image exists; its pixels are prepare's business.
    for asset_id in asset_ids[MISSING_IMAGES:]:
        (raw / "images" / f"{asset_id}.jpg").write_bytes(b"\xff\xd8")
    for asset_id in range(900_000, 900_000 + STRAY_IMAGES):
        (raw / "images" / f"{asset_id}.jpg").write_bytes(b"\xff\xd8")
    db = raw.parent / "galaxy_data.sqlite"
    report = ingest.ingest(raw, db, progress=False)
    return raw, db, report, ingest.read_galaxy_data(db)


def test_real_rows_hold_what_the_test_is_about(real_rows):
    # Guards the fixture: real debiased fractions that do not sum to 1, and rare real classes.
    t01 = real_rows[schema.target_columns()[:3]].sum(axis=1)
    assert (np.abs(t01 - 1) > 0.05).sum() >= 10
    assert (real_rows["gz2_class"].value_counts() < ingest.RARE_CLASS_BELOW).sum() >= 30


def test_row_counts_at_each_step(ingested, real_rows):
    _, _, report, table = ingested
    n = len(real_rows)
    assert report.hart16_rows == n
    assert report.mapping_rows == n + DUPLICATES
    assert report.mapping_duplicate_rows == DUPLICATES
    assert report.mapping_rows_dropped == DUPLICATES
    assert report.joined_rows == n
    assert report.hart16_rows_unmatched == 0
    assert report.nan_rows == 0
    assert report.rows_without_image == MISSING_IMAGES
    assert report.images_found == n - MISSING_IMAGES + STRAY_IMAGES
    assert report.images_without_row == STRAY_IMAGES
    assert report.final_rows == len(table) == n - MISSING_IMAGES
    assert report.gz2_classes == real_rows["gz2_class"].nunique()


def test_real_values_are_stored_as_published(ingested, real_rows):
    # No renormalisation: the debiased fractions go in as the catalogue has them (to float precision).
    _, _, _, table = ingested
    expected = real_rows.set_index("dr7objid").loc[table["dr7objid"]]
    for kind in ("debiased", "count"):
        columns = schema.target_columns(kind)
        np.testing.assert_allclose(table[columns].to_numpy(float), expected[columns].to_numpy(float), rtol=1e-6)
    assert (table["gz2_class"].to_numpy() == expected["gz2_class"].to_numpy()).all()


def test_class_reduced_counts_on_real_classes(ingested, real_rows):
    _, _, report, table = ingested
    counts = table["class_reduced"].value_counts()
    assert counts.sum() == report.final_rows
    assert counts.get(ingest.SUPER_RARE, 0) == report.super_rare_rows > 0
    assert report.reduced_classes == len(counts)
    # Every label but SuperRare keeps more than 3 members, so the split can stratify on it.
    assert (counts.drop(ingest.SUPER_RARE) > ingest.SUPER_RARE_AT_MOST).all()
    # Common real classes (>= 12 in hart16) keep their name, one member per kept row.
    in_hart16 = real_rows["gz2_class"].value_counts()
    common = in_hart16.index[in_hart16 >= ingest.RARE_CLASS_BELOW]
    assert {"Er", "Ei"} <= set(common)
    for name in common:
        assert counts[name] == (table["gz2_class"] == name).sum()
    # A rare class keeps its label only after losing arm count and winding, or becomes SuperRare.
    rare = ~table["gz2_class"].isin(common)
    allowed = table.loc[rare, "gz2_class"].map(ingest.reduce_class_name)
    got = table.loc[rare, "class_reduced"]
    assert ((got == allowed) | (got == ingest.SUPER_RARE)).all()


def test_split_counts_on_real_rows(ingested):
    _, db, report, table = ingested
    info = split.make_split(db, test_size=0.25, val_size=0.1, random_state=32)
    parts = [info.train, info.val, info.test]
    assert sum(len(p) for p in parts) == report.final_rows
    assert len(np.unique(np.concatenate(parts))) == report.final_rows
    assert len(info.test) == int(np.ceil(0.25 * report.final_rows))
    assert info.stratified_test
    assert set(np.concatenate(parts)) == set(table["asset_id"])

"""The catalogue side of a synthetic GZ2 sample: identities, quirks and tables.

The real release is three things joined by ids: `gz2_hart16.csv` (one row per
classified galaxy), `gz2_filename_mapping.csv` (objid -> asset_id) and the
`images/{asset_id}.jpg` files. They do not join cleanly, and a faithful ingest
has to cope. `plan_catalogue` decides, before anything is rendered, who every
synthetic galaxy is (objid, sample, sky position, asset_id) and which real
quirk it carries; the `*_table` functions then turn the per-galaxy results into
the three CSVs.

Quirk rates follow the real counts (REFERENCE.md) but every quirk appears at
least `MIN_QUIRK` times, so even a 50-galaxy sample exercises every branch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from galaxyzoo import schema

FIRST_DUPLICATE_ASSET_ID = 295306
"""Mapping rows with `asset_id` at or above this are duplicates with no image."""

MAX_ASSET_ID = 355990  # the real mapping's row count; duplicate asset ids stay below it

MIN_QUIRK = 2
"""Every quirk occurs at least this many times, whatever the sample size."""

MIN_ROWS = 10
"""The smallest sample that holds every quirk with clean rows to spare."""

# Real counts (REFERENCE.md and Willett et al. 2013, Table 1) as rates.
RATE_NAN_ROW = 306 / 239_695  # hart16 rows with some NaN `_debiased`
RATE_ROW_WITHOUT_IMAGE = 122 / 239_695  # hart16 rows whose image is missing
RATE_IMAGE_WITHOUT_ROW = 4_167 / 243_434  # images whose objid has no hart16 row
RATE_MAPPING_ONLY = (325_651 - 239_695 - 4_167) / 239_695  # mapping rows with neither row nor image

# The GZ2 samples in the real (clean) mapping: original r < 17 main sample,
# "extra" 17 < r < 17.77, Stripe 82 single-epoch and two Stripe 82 coadd sets.
# The second coadd set duplicates objids of the first: those are the 30,339
# duplicated mapping rows (asset_id >= 295306, no image).
SAMPLES = ("original", "extra", "stripe82", "stripe82_coadd_1", "stripe82_coadd_2")
SAMPLE_WEIGHTS = np.array([245_609, 28_174, 21_522, 15_173, 15_173], dtype=np.float64)
COADD_SAMPLES = ("stripe82_coadd_1", "stripe82_coadd_2")

NAN_COLUMN = "t02_edgeon_a05_no_debiased"  # 294 of the 306 real NaN rows miss this one
RATE_NAN_IN_MAIN_COLUMN = 294 / 306

# Decimal places written to the CSVs (fixed, so files are byte-identical per seed).
ANSWER_DECIMALS = 3
SKY_DECIMALS = 6
TRUTH_DECIMALS = 6


@dataclass(frozen=True)
class CataloguePlan:
    """Who every simulated galaxy is, and which quirks it carries.

    Arrays of length G (simulated galaxies, in index order): `objid`, `sample`,
    `ra`, `dec`, `asset_id`, `in_hart16` (has a hart16 row; the others are the
    "images without a row"), `has_image`, and `nan_column` (index of the
    `_debiased` answer blanked in that row, -1 for none). `extra_mapping` holds
    the mapping rows with no simulated galaxy behind them: duplicates and
    mapping-only objects.
    """

    objid: np.ndarray
    sample: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    asset_id: np.ndarray
    in_hart16: np.ndarray
    has_image: np.ndarray
    nan_column: np.ndarray
    extra_mapping: pd.DataFrame

    @property
    def n_galaxies(self) -> int:
        return len(self.objid)


def quirk_count(n: int, rate: float) -> int:
    """How many rows of `n` carry a quirk: the real rate, but at least `MIN_QUIRK`."""
    return max(MIN_QUIRK, int(round(n * rate)))


def plan_catalogue(n: int, rng: np.random.Generator) -> CataloguePlan:
    """Decide ids, samples, positions and quirks for a sample of `n` hart16 rows."""
    n_orphan = quirk_count(n, RATE_IMAGE_WITHOUT_ROW)
    n_galaxies = n + n_orphan
    n_no_image = quirk_count(n, RATE_ROW_WITHOUT_IMAGE)
    n_nan = quirk_count(n, RATE_NAN_ROW)

    sample = draw_samples(n_galaxies + quirk_count(n, RATE_MAPPING_ONLY), rng)
    objid = sdss_objids(sample, rng)
    # Real asset ids are distinct but not contiguous below 295306.
    asset_id = 1 + rng.choice(FIRST_DUPLICATE_ASSET_ID - 1, len(sample), replace=False)
    ra, dec = sky_positions(sample[:n_galaxies], rng)

    in_hart16 = np.ones(n_galaxies, dtype=bool)
    in_hart16[rng.choice(n_galaxies, n_orphan, replace=False)] = False
    # Image-less and NaN rows are disjoint, as in the real join (122 + 306 rows dropped).
    picked = rng.choice(np.flatnonzero(in_hart16), n_no_image + n_nan, replace=False)
    has_image = np.ones(n_galaxies, dtype=bool)
    has_image[picked[:n_no_image]] = False
    nan_column = np.full(n_galaxies, -1, dtype=np.int64)
    nan_column[picked[n_no_image:]] = nan_columns(n_nan, rng)

    clean = pd.DataFrame({"objid": objid, "sample": sample, "asset_id": asset_id})
    return CataloguePlan(
        objid=objid[:n_galaxies],
        sample=sample[:n_galaxies],
        ra=ra,
        dec=dec,
        asset_id=asset_id[:n_galaxies],
        in_hart16=in_hart16,
        has_image=has_image,
        nan_column=nan_column,
        extra_mapping=pd.concat([clean.iloc[n_galaxies:], duplicate_rows(clean, rng)], ignore_index=True),
    )


def nan_columns(n: int, rng: np.random.Generator) -> np.ndarray:
    """Which `_debiased` answer each NaN-quirk row misses: mostly `NAN_COLUMN`, as in the real file."""
    main = schema.target_columns("debiased").index(NAN_COLUMN)
    other = rng.integers(0, schema.N_ANSWERS, n)
    return np.where(rng.random(n) < RATE_NAN_IN_MAIN_COLUMN, main, other)


def draw_samples(n: int, rng: np.random.Generator) -> np.ndarray:
    """GZ2 sample names in the real proportions, every coadd set at least `MIN_QUIRK` times.

    Coadd galaxies are what the duplicated mapping rows duplicate, so they must
    exist even in a tiny sample.
    """
    p = SAMPLE_WEIGHTS / SAMPLE_WEIGHTS.sum()
    sample = np.asarray(SAMPLES, dtype=object)[rng.choice(len(SAMPLES), n, p=p)]
    for name in COADD_SAMPLES:
        missing = MIN_QUIRK - int((sample == name).sum())
        if missing > 0:
            others = np.flatnonzero(~np.isin(sample, COADD_SAMPLES))
            sample[rng.choice(others, min(missing, len(others)), replace=False)] = name
    return sample


def duplicate_rows(clean: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The duplicated mapping rows: every coadd object imaged again in the other coadd set.

    Their asset ids lie at or above 295306 and no image exists for them.
    """
    coadd = clean[clean["sample"].isin(COADD_SAMPLES)]
    other = np.where(coadd["sample"] == COADD_SAMPLES[0], COADD_SAMPLES[1], COADD_SAMPLES[0])
    asset_id = FIRST_DUPLICATE_ASSET_ID + rng.choice(MAX_ASSET_ID - FIRST_DUPLICATE_ASSET_ID, len(coadd), replace=False)
    return pd.DataFrame({"objid": coadd["objid"].to_numpy(), "sample": other, "asset_id": asset_id})


# SDSS DR7 photometric runs: legacy imaging (rerun 40..44) and the Stripe 82
# coadds (skyVersion 15, rerun 2, runs 106 and 206).
_LEGACY_RUNS = (752, 756, 1140, 1231, 1331, 1345, 1350, 1402, 1462, 1739, 2125, 2141, 2190, 2248, 2304, 2382,
                2566, 2708, 2830, 2964, 3225, 3325, 3462, 3630, 3699, 3813, 3903, 3971, 4136, 4207, 4263, 4335,
                4570, 4623, 4822, 5115, 5194, 5314, 5381, 5622, 5754, 5972, 6177, 6314, 6460)
_STRIPE82_RUNS = (94, 125, 1752, 1755, 1894, 2385, 2570, 2578, 2583, 2589, 2649, 2650, 2659, 2662, 2700,
                  2738, 2768, 2820, 3325, 3384, 3388, 3434, 3437, 4128, 4145, 4153, 4157, 4184, 4187, 4188)


def sdss_objids(sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Distinct SDSS DR7 objIDs, bit-packed like the real ones (e.g. 587722981741363294).

    objID = skyVersion<<59 | rerun<<48 | run<<32 | camcol<<29 | field<<16 | obj.
    """
    n = len(sample)
    coadd = np.isin(sample, COADD_SAMPLES)
    s82 = sample == "stripe82"
    sky_version = np.where(coadd, 15, 1).astype(np.int64)
    rerun = np.where(coadd, 2, rng.choice((40, 41, 44), n, p=(0.8, 0.15, 0.05))).astype(np.int64)
    run = np.where(
        coadd,
        rng.choice((106, 206), n),
        np.where(s82, rng.choice(_STRIPE82_RUNS, n), rng.choice(_LEGACY_RUNS, n)),
    ).astype(np.int64)
    camcol = rng.integers(1, 7, n, dtype=np.int64)
    field = rng.integers(11, 800, n, dtype=np.int64)
    obj = rng.integers(1, MAX_OBJ, n, dtype=np.int64)
    return _make_distinct((sky_version << 59) | (rerun << 48) | (run << 32) | (camcol << 29) | (field << 16) | obj, rng)


MAX_OBJ = 1200  # object numbers within one SDSS field stay small


def _make_distinct(ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Re-draw the object number of any repeated id until all are distinct."""
    ids = ids.copy()
    while True:
        _, first = np.unique(ids, return_index=True)
        repeated = np.setdiff1d(np.arange(len(ids)), first)
        if repeated.size == 0:
            return ids
        ids[repeated] = (ids[repeated] & ~np.int64(0xFFFF)) | rng.integers(1, MAX_OBJ, repeated.size, dtype=np.int64)


def sky_positions(sample: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """RA/Dec in degrees: the northern Legacy footprint, or Stripe 82 (|dec| < 1.25, ra 310..60)."""
    n = len(sample)
    s82 = np.char.startswith(sample.astype(str), "stripe82")
    ra = np.where(s82, np.mod(rng.uniform(-50.0, 60.0, n), 360.0), rng.uniform(110.0, 260.0, n))
    dec = np.where(s82, rng.uniform(-1.25, 1.25, n), np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(-5.0)),
                                                                                         np.sin(np.radians(68.0)), n))))
    return np.round(ra, SKY_DECIMALS), np.round(dec, SKY_DECIMALS)


def ra_strings(ra: np.ndarray) -> list[str]:
    """Sexagesimal right ascension, "hh:mm:ss.ss"."""
    centis = np.rint(np.asarray(ra) / 15.0 * 3600.0 * 100.0).astype(np.int64) % (24 * 3600 * 100)
    hours, rest = np.divmod(centis, 3600 * 100)
    minutes, rest = np.divmod(rest, 60 * 100)
    return [f"{h:02d}:{m:02d}:{s // 100:02d}.{s % 100:02d}" for h, m, s in zip(hours, minutes, rest)]


def dec_strings(dec: np.ndarray) -> list[str]:
    """Sexagesimal declination, "+dd:mm:ss.s" (sign always written)."""
    dec = np.asarray(dec)
    decis = np.rint(np.abs(dec) * 3600.0 * 10.0).astype(np.int64)
    degrees, rest = np.divmod(decis, 3600 * 10)
    minutes, rest = np.divmod(rest, 60 * 10)
    return [
        f"{'-' if d < 0 else '+'}{g:02d}:{m:02d}:{s // 10:02d}.{s % 10:d}"
        for d, g, m, s in zip(dec, degrees, minutes, rest)
    ]


def hart16_table(plan: CataloguePlan, results: list) -> pd.DataFrame:
    """The `gz2_hart16.csv` table: the galaxies with a hart16 row, in index order.

    `results[i]` is galaxy i's `GalaxyResult` (see `generate`). NaN-quirk rows
    lose one `_debiased` value (mostly `NAN_COLUMN`), as in the real file.
    """
    rows = np.flatnonzero(plan.in_hart16)
    picked = [results[i] for i in rows]
    columns: dict[str, object] = {
        "dr7objid": pd.array(plan.objid[rows], dtype="Int64"),
        "ra": plan.ra[rows],
        "dec": plan.dec[rows],
        "rastring": ra_strings(plan.ra[rows]),
        "decstring": dec_strings(plan.dec[rows]),
        "sample": plan.sample[rows],
        "gz2_class": [r.gz2_class for r in picked],
        "total_classifications": np.array([r.total_classifications for r in picked], dtype=np.int64),
        "total_votes": np.array([r.total_votes for r in picked], dtype=np.int64),
    }
    blocks = {s: np.stack([r.answers[s] for r in picked]) for s in schema.SUFFIXES}
    blocks["debiased"] = blank_debiased(blocks["debiased"], plan.nan_column[rows])
    for answer in schema.ANSWERS:
        for suffix in schema.SUFFIXES:
            values = blocks[suffix][:, answer.index]
            if suffix in ("count", "flag"):
                columns[answer.column(suffix)] = values.astype(np.int64)
            else:
                columns[answer.column(suffix)] = np.round(values.astype(np.float64), ANSWER_DECIMALS)
    table = pd.DataFrame(columns)
    assert list(table.columns) == [name for name, _ in schema.hart16_columns()]
    return table


def blank_debiased(debiased: np.ndarray, nan_column: np.ndarray) -> np.ndarray:
    """Blank the planned `_debiased` value of each NaN-quirk row (`nan_column` >= 0)."""
    out = debiased.astype(np.float64, copy=True)
    rows = np.flatnonzero(nan_column >= 0)
    out[rows, nan_column[rows]] = np.nan
    return out


def mapping_table(plan: CataloguePlan) -> pd.DataFrame:
    """The `gz2_filename_mapping.csv` table, sorted by asset_id (duplicates therefore last)."""
    galaxies = pd.DataFrame({"objid": plan.objid, "sample": plan.sample, "asset_id": plan.asset_id})
    table = pd.concat([galaxies, plan.extra_mapping], ignore_index=True)
    table = table.sort_values("asset_id", kind="stable", ignore_index=True)
    return table.astype({"objid": "Int64", "sample": object, "asset_id": np.int64})


def truth_table(plan: CataloguePlan, results: list) -> pd.DataFrame:
    """`truth.csv`: every simulated galaxy's latent morphology and true answer probabilities."""
    names = true_columns()
    records = []
    for i, r in enumerate(results):
        rec = {
            "asset_id": int(plan.asset_id[i]),
            "dr7objid": int(plan.objid[i]),
            "in_hart16": bool(plan.in_hart16[i]),
            "has_image": bool(plan.has_image[i]),
        }
        rec.update(r.morphology)
        rec["visibility"] = r.visibility
        rec["crop_radius"] = r.crop_radius
        rec["crop_branch"] = r.crop_branch
        rec.update(zip(names, r.true_probabilities.tolist()))
        records.append(rec)
    table = pd.DataFrame.from_records(records)
    floats = table.select_dtypes("float").columns
    table[floats] = table[floats].round(TRUTH_DECIMALS)
    return table


def true_columns() -> list[str]:
    """The 37 truth columns, `{answer stem}_true`, in target order."""
    return [f"{a.stem}_true" for a in schema.ANSWERS]


def write_csv(table: pd.DataFrame, path) -> None:
    """Write a table the same way every time: no index, NaN as empty, '\\n' line ends."""
    table.to_csv(path, index=False, na_rep="", lineterminator="\n")

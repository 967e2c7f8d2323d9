"""Shared fixtures: tiny data, temporary output folders, paths to shared/ material."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only `shared/` folder beside the checkout (REFERENCE.md, real images)."""
    if not SHARED.is_dir():
        pytest.fail(f"shared/ material not found at {SHARED}; the project expects it beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def real_images_dir(shared_dir: Path) -> Path:
    """The 100 real GZ2 JPEGs (read them here; never copy them into the project)."""
    return shared_dir / "gz2" / "sample_images"

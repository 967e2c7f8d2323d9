"""The fast crop against a plain re-implementation of the seed's, on real and synthetic images."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from galaxyzoo.data.crop import (
    BRANCHES,
    central_square,
    choose_branch,
    crop_image,
    decode_image,
    galaxy_box,
    image_problem,
    nearest_contour,
)
from galaxyzoo.registry.crops import preprocess


def crop_reference(path: Path) -> tuple[np.ndarray, str]:
    """The seed's crop as it ran: full resolution, one image at a time, nothing shared with crop.py."""
    image = cv2.imread(str(path))
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    blurred = cv2.GaussianBlur(gray, (5, 5), 0)
    _, thresh = cv2.threshold(blurred, 30, 255, cv2.THRESH_BINARY)
    dilated = cv2.dilate(thresh, cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5)), iterations=1)
    contours, _ = cv2.findContours(dilated, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    best, best_distance = None, float("inf")
    for contour in contours:
        if cv2.contourArea(contour) < 100:
            continue
        m = cv2.moments(contour)
        distance = np.hypot(m["m10"] / m["m00"] - 212, m["m01"] / m["m00"] - 212)
        if distance < best_distance:
            best, best_distance = contour, distance
    if best is None:
        return cv2.resize(gray, (106, 106)), "fallback"
    x, y, w, h = cv2.boundingRect(best)
    if x >= 159 and y >= 159 and x + w <= 265 and y + h <= 265:
        return gray[159:265, 159:265], "center106"
    if x >= 106 and y >= 106 and x + w <= 318 and y + h <= 318:
        return cv2.resize(gray[106:318, 106:318], (106, 106)), "center212"
    return cv2.resize(gray, (106, 106)), "full"


@pytest.fixture(scope="module")
def real_crops(real_images_dir):
    """(reference crop, reference branch, fast crop, fast branch) for the 40 real images."""
    paths = sorted(real_images_dir.glob("*.jpg"))
    assert len(paths) == 40
    out = []
    for path in paths:
        ref, ref_branch = crop_reference(path)
        fast, fast_branch = crop_image(decode_image(path.read_bytes()))
        out.append((ref, ref_branch, fast, fast_branch))
    return out


def test_fast_crop_matches_reference_on_real_images(real_crops):
    agree = sum(ref_b == fast_b for _, ref_b, _, fast_b in real_crops)
    diffs = [np.abs(ref.astype(int) - fast[..., 0].astype(int)).mean() for ref, _, fast, _ in real_crops]
    assert agree >= len(real_crops) - 1
    assert np.mean(diffs) <= 1.0
    assert max(diffs) <= 2.0


def test_real_images_take_every_main_branch(real_crops):
    # The sample holds a central-106, central-212 and whole-image galaxy, so each path is exercised.
    assert {b for _, b, _, _ in real_crops} >= {"center106", "center212", "full"}


def test_crop_of_colour_array_equals_reference_exactly(real_images_dir):
    # Same decode and same grayscale conversion as the reference: the pixels must be identical.
    for path in sorted(real_images_dir.glob("*.jpg"))[:20]:
        ref, ref_branch = crop_reference(path)
        crop, branch = crop_image(cv2.imread(str(path)))
        assert branch == ref_branch
        np.testing.assert_array_equal(crop[..., 0], ref)


def _disc(radius: int, centre=(212, 212), shape=(424, 424), value=200) -> np.ndarray:
    image = np.zeros(shape, np.uint8)
    cv2.circle(image, centre, radius, value, thickness=-1)
    return image


@pytest.mark.parametrize(
    ("radius", "branch"),
    [(20, "center106"), (70, "center212"), (150, "full")],
)
def test_synthetic_galaxy_sizes_pick_each_branch(radius, branch):
    crop, got = crop_image(_disc(radius))
    assert got == branch
    assert crop.shape == (106, 106, 1) and crop.dtype == np.uint8


def test_center106_is_a_plain_crop_and_center212_a_resize():
    image = _disc(20)
    # A faint gradient (below the threshold) so that a shifted crop would not match.
    image[159:265, 159:265] += (np.arange(106) // 6).astype(np.uint8)[None, :]
    crop, _ = crop_image(image)
    np.testing.assert_array_equal(crop[..., 0], image[159:265, 159:265])
    image = _disc(70)
    crop, _ = crop_image(image)
    np.testing.assert_array_equal(crop[..., 0], cv2.resize(image[106:318, 106:318], (106, 106)))


def test_blank_or_speck_only_image_falls_back_to_whole_image_resize():
    # A radius-2 disc survives the threshold but its dilated contour has area 62 < 100.
    for image in (np.zeros((424, 424), np.uint8), _disc(2)):
        crop, branch = crop_image(image)
        assert branch == "fallback"
        np.testing.assert_array_equal(crop[..., 0], cv2.resize(image, (106, 106)))


def test_nearest_centroid_wins_over_larger_contour():
    image = _disc(100, centre=(330, 330))  # big but off-centre
    cv2.circle(image, (212, 212), 15, 200, thickness=-1)  # small, central
    box = galaxy_box(image)
    assert box is not None and 212 - 25 < box[0] < 212 and box[2] < 60


def _square_contour(x, y, w, h):
    return np.array([[[x, y]], [[x + w, y]], [[x + w, y + h]], [[x, y + h]]], dtype=np.int32)


def test_contours_below_area_100_are_ignored():
    # Polygon areas: 10x10 = 100 is kept, 9x11 = 99 is not, even though it is nearer.
    near_small = _square_contour(207, 207, 9, 11)
    far_100 = _square_contour(300, 300, 10, 10)
    assert nearest_contour([near_small, far_100], (212, 212)) is far_100
    assert nearest_contour([near_small], (212, 212)) is None


@pytest.mark.parametrize(
    ("box", "branch"),
    [
        ((159, 159, 106, 106), "center106"),  # exactly the crop: nothing cut off
        ((158, 159, 107, 106), "center212"),  # one pixel left of it
        ((159, 159, 107, 106), "center212"),  # one pixel right of it (x + w = 266)
        ((159, 159, 106, 107), "center212"),
        ((106, 106, 212, 212), "center212"),
        ((105, 106, 213, 212), "full"),
        ((106, 106, 213, 212), "full"),
        ((0, 0, 424, 424), "full"),
        (None, "fallback"),
    ],
)
def test_branch_boundaries(box, branch):
    assert choose_branch(box, 424, 424) == branch


def test_central_squares_of_a_gz2_image():
    assert central_square(424, 424, 4) == (slice(159, 265), slice(159, 265))
    assert central_square(424, 424, 2) == (slice(106, 318), slice(106, 318))


def test_colour_keeps_geometry_and_decides_on_gray():
    bgr = np.zeros((424, 424, 3), np.uint8)
    cv2.circle(bgr, (212, 212), 20, (40, 120, 220), thickness=-1)
    colour, branch3 = crop_image(bgr, channels=3)
    gray, branch1 = crop_image(bgr, channels=1)
    assert branch3 == branch1 == "center106"
    assert colour.shape == (106, 106, 3)
    np.testing.assert_array_equal(colour, bgr[159:265, 159:265])
    np.testing.assert_array_equal(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), gray[..., 0])


def test_other_output_sizes_resize_every_branch():
    for radius in (20, 70, 150):
        crop, _ = crop_image(_disc(radius), size=64)
        assert crop.shape == (64, 64, 1)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        crop_image(np.zeros((424, 424), np.float32))
    with pytest.raises(ValueError, match="channels=3"):
        crop_image(np.zeros((424, 424), np.uint8), channels=3)
    with pytest.raises(ValueError, match="channels"):
        crop_image(np.zeros((424, 424), np.uint8), channels=2)


def test_decode_rejects_corrupt_bytes(real_images_dir):
    data = next(real_images_dir.glob("*.jpg")).read_bytes()
    assert decode_image(data).shape == (424, 424)
    assert decode_image(data, channels=3).shape == (424, 424, 3)
    assert decode_image(data[: len(data) // 2]) is None  # truncated download
    assert decode_image(b"not a jpeg") is None
    assert decode_image(b"") is None


def test_decode_gives_opencvs_pixels(real_images_dir):
    """libjpeg-turbo through simplejpeg decodes JPEGs exactly as OpenCV's imdecode (the seed's reader) did."""
    for path in sorted(real_images_dir.glob("*.jpg"))[:10]:
        raw = np.frombuffer(path.read_bytes(), np.uint8)
        assert np.array_equal(decode_image(raw.tobytes()), cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE))
        assert np.array_equal(decode_image(raw.tobytes(), 3), cv2.imdecode(raw, cv2.IMREAD_COLOR))


def test_decode_refuses_a_jpeg_damaged_mid_file(real_images_dir):
    """OpenCV decodes scan data damaged mid-file without an error and paints the rest flat grey, a crop
    that prepare stored as ok and predict predicted; libjpeg-turbo's warnings now refuse it."""
    data = bytearray(sorted(real_images_dir.glob("*.jpg"))[2].read_bytes())  # libjpeg sees this damage; not all show
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    damaged = bytes(data)
    assert cv2.imdecode(np.frombuffer(damaged, np.uint8), cv2.IMREAD_GRAYSCALE) is not None  # what OpenCV did
    image, problem = image_problem(damaged)
    assert image is None and problem.startswith("corrupt JPEG data (")
    assert image_problem(damaged, channels=3)[0] is None


def test_decode_repairs_what_libjpeg_warns_of_without_damage_and_still_finds_damage_behind_it(real_images_dir,
                                                                                              tmp_path):
    """A JFIF 2.01 header draws a libjpeg warning but changes no pixel: such a JPEG decodes as the clean
    file does. The strict decode stops at its first warning, so damage behind it must still be found
    (letting OpenCV decide such files once let damage through, painted flat). A missing end marker is a
    cut file: a progressive JPEG cut between its scans, given one, would pass as whole."""
    from PIL import Image, PngImagePlugin

    data = sorted(real_images_dir.glob("*.jpg"))[2].read_bytes()
    clean = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    version = data.index(b"JFIF\0") + 5

    def newer(jpeg: bytes) -> bytes:  # JFIF 2.01
        return jpeg[:version] + b"\x02\x01" + jpeg[version + 2:]

    assert np.array_equal(decode_image(newer(data)), clean)
    middle = len(data) // 2
    damaged = data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:]
    for variant in (damaged, newer(damaged), data[:-2], newer(data)[:-2], data[:len(data) * 9 // 10]):
        image, problem = image_problem(variant)
        assert image is None and problem.startswith("corrupt JPEG data ("), problem
    Image.fromarray(clean).save(tmp_path / "p.jpg", progressive=True)
    progressive = (tmp_path / "p.jpg").read_bytes()
    second_scan = progressive.index(b"\xff\xda", progressive.index(b"\xff\xda") + 2)
    assert decode_image(progressive).shape == clean.shape
    assert image_problem(progressive[:second_scan])[0] is None  # its first scan only
    # Bytes that are not a marker's fill, before a marker: not a JPEG any encoder should write, refused
    header_end = data.index(b"\xff\xdb")
    assert image_problem(data[:header_end] + b"\0\0" + data[header_end:])[0] is None
    info = PngImagePlugin.PngInfo()
    info.add_text("note", "a text chunk")
    Image.fromarray(np.full((20, 30), 9, np.uint8)).save(tmp_path / "t.png", pnginfo=info)
    png = bytearray((tmp_path / "t.png").read_bytes())
    crc = png.index(b"tEXt") + 4 + len(b"note\0a text chunk")
    png[crc] ^= 0xFF  # libpng warns; Pillow refuses the file
    assert decode_image(bytes(png)).shape == (20, 30)


def test_decode_checks_a_cameras_multi_picture_jpeg_too(real_images_dir):
    from PIL import Image
    import io

    image = Image.open(sorted(real_images_dir.glob("*.jpg"))[2])
    out = io.BytesIO()
    image.save(out, "MPO", save_all=True, append_images=[image])
    data = bytearray(out.getvalue())
    assert decode_image(bytes(data)).shape == (424, 424)
    first_end = len(data) // 4
    data[first_end:first_end + 64] = bytes(b ^ 0xFF for b in data[first_end:first_end + 64])
    assert image_problem(bytes(data))[1].startswith("corrupt JPEG data")


def test_decode_turns_a_jpeg_by_its_exif_orientation_as_opencv_did(tmp_path):
    from PIL import Image

    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:10, :20] = 255  # a white patch top left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    data = (tmp_path / "turned.jpg").read_bytes()
    expected = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert expected.shape == (60, 40)  # OpenCV applies the EXIF turn
    assert np.array_equal(decode_image(data), expected)


def test_decode_refuses_formats_pillow_cannot_identify(tmp_path):
    """OpenCV also reads Radiance HDR, PFM and the like, at any size: only formats whose header Pillow
    reads (and so whose size is checked first) are decoded."""
    assert cv2.imwrite(str(tmp_path / "wide.hdr"), np.zeros((20, 9000, 3), np.float32))
    data = (tmp_path / "wide.hdr").read_bytes()
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) is not None
    assert image_problem(data) == (None, "corrupt or not an image file")
    assert cv2.imwrite(str(tmp_path / "small.png"), np.full((30, 30), 7, np.uint8))
    assert decode_image((tmp_path / "small.png").read_bytes()).shape == (30, 30)


def with_header_size(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its frame header (SOF) claiming another size; the pixel data stay as they were."""
    out, i = bytearray(jpeg), 2
    while out[i + 1] not in (0xC0, 0xC1, 0xC2):  # walk the marker segments to the frame header
        i += 2 + int.from_bytes(out[i + 2:i + 4], "big")
    out[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(out)


def test_decode_refuses_a_header_claiming_a_huge_image_before_decoding_it(real_images_dir):
    """15 kB claiming 30000x30000 would take gigabytes to decode, for a flat grey crop trained as a galaxy."""
    data = next(real_images_dir.glob("*.jpg")).read_bytes()
    assert image_problem(with_header_size(data, 424, 424))[1] == ""
    at_limit = image_problem(with_header_size(data, 4240, 4240))[1]
    assert at_limit.startswith("corrupt JPEG data")  # decoded (the size is allowed), and its data fall short
    wide = with_header_size(data, 5000, 424)
    assert image_problem(wide) == (None, "its header claims 5000x424 pixels, over 4240 a side (GZ2 images are 424x424)")
    assert decode_image(wide) is None and decode_image(wide, channels=3) is None
    bomb = with_header_size(data, 30000, 30000)
    assert decode_image(bomb) is None and "its header claims over" in image_problem(bomb)[1]
    with pytest.raises(ValueError, match=r"^not a readable image \(its header claims 5000x424 pixels"):
        preprocess(wide, 106, 1)
    with pytest.raises(ValueError, match=r"^not a readable image \(corrupt or not an image file\)$"):
        preprocess(b"not a jpeg", 106, 1)


def test_branch_names_are_the_contract():
    assert BRANCHES == ("center106", "center212", "full", "fallback")

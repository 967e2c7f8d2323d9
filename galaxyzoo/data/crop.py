"""The seed project's galaxy crop, step for step, fast enough for 243k images.

The seed found the galaxy in each 424x424 image and kept a 106x106 grayscale view of it:

1. grayscale, Gaussian blur 5x5, binary threshold at 30, dilate once with a 5x5 rectangle;
2. external contours, ignoring those with an area below 100 pixels;
3. the contour whose centroid is nearest the image centre (212, 212), and its bounding box;
4. box inside the central 106 square (pixels 159..264) -> crop that square ("center106");
   box inside the central 212 square (pixels 106..317) -> crop it, resize to 106 ("center212");
   otherwise -> resize the whole image to 106 ("full").

Where the seed found no contour of 100 pixels it crashed; here the whole image is resized and
the crop is labelled "fallback" so that the caller can count those images.

"Inside" means that every pixel of the box is a pixel the crop keeps: `x >= 159` and
`x + w <= 265` (OpenCV's boxes and NumPy slices both exclude their end). Resizing uses
OpenCV's default bilinear interpolation, as the seed did.

Speed comes from decoding each JPEG once, straight to its luma channel (`decode_image`):
the decision needs full-resolution pixels (box edges cluster within a few pixels of 159
and 265 on real images, so any downscaled shortcut flips branches), and libjpeg skips the
chroma work when asked for grayscale. The luma plane differs from the seed's
`cvtColor(BGR2GRAY)` by 0.02 gray levels on average on real GZ2 images.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import simplejpeg
from PIL import Image

BRANCHES = ("center106", "center212", "full", "fallback")
MAX_SIDE = 424  # the GZ2 images' side: a larger crop would only interpolate (and a store grows with its square)
THRESHOLD = 30
MIN_AREA = 100
_BLUR_KERNEL = (5, 5)
_DILATE_KERNEL = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
# Ten times a GZ2 image's side. A header claiming more (a damaged one, or a decompression bomb: 15 kB
# that say 30000x30000) would cost gigabytes to decode, in every worker at once, for a flat grey crop.
MAX_DECODE_SIDE = 4240
_EXIF_ORIENTATION = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def image_problem(data: bytes, channels: int = 1) -> tuple[np.ndarray | None, str]:
    """Decode image bytes once: `(image, "")`, or `(None, why)` when they are empty, too large (from the
    header, before decoding), not an image, or a JPEG with corrupt data.

    `channels=1` decodes only the luma plane, (H, W) uint8, which is what makes the crop
    fast; `channels=3` decodes BGR colour, (H, W, 3) uint8. JPEGs go through libjpeg-turbo
    with its warnings as errors (simplejpeg's `strict`): OpenCV decodes a JPEG whose scan
    data is damaged mid-file, and paints what it lost flat grey, with no error to catch.
    The pixels are OpenCV's to the last bit, and decoding is a little faster.
    """
    header = _header(data) if data else "the file is empty"
    if isinstance(header, str):
        return None, header
    if header.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with more pictures after the first
        upright = header.orientation in (None, 1)
        # A JPEG with an EXIF rotation is only checked here (at 1/8 scale, cheaply); OpenCV decodes and turns it.
        image, problem = _strict_jpeg(data, "GRAY" if channels == 1 else "BGR", {} if upright else
                                      {"min_height": 1, "min_width": 1})
        if problem or upright:
            return (image[..., 0] if channels == 1 and image is not None else image), problem
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        image = None
    return image, "" if image is not None else f"a {header.format} file that cannot be decoded"


def _strict_jpeg(data: bytes, colorspace: str, scale: dict) -> tuple[np.ndarray | None, str]:
    """simplejpeg's strict decode, `(image, "")` or `(None, why)`. Strict stops at libjpeg's first
    warning, so one that says nothing of the pixels, a JFIF version it does not know, is repaired in a
    copy (set to 1.02) and the decode run again, which then finds any damage behind it. A missing end
    marker is not repaired: a progressive JPEG cut between its scans would then pass as whole."""
    for _ in range(2):
        try:
            return simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True, **scale), ""
        except ValueError as exc:
            why = str(exc).rstrip(".")
        jfif = data.find(b"JFIF\0", 0, 32)
        if "unknown JFIF revision" not in why or jfif < 0:
            break
        data = data[:jfif + 5] + b"\x01\x02" + data[jfif + 7:]
    return None, f"corrupt JPEG data ({why})"


def decode_image(data: bytes, channels: int = 1) -> np.ndarray | None:
    """`image_problem`'s image alone: None when the bytes cannot be decoded."""
    return image_problem(data, channels)[0]


@dataclass(frozen=True)
class _Header:
    format: str  # Pillow's name (JPEG, MPO, PNG, ...)
    orientation: int | None  # EXIF orientation; OpenCV turns the image by it


def _header(data: bytes) -> _Header | str:
    """What Pillow reads from the header alone, or why the bytes are not an image to decode: not one Pillow
    knows (OpenCV would also decode Radiance HDR and the like, at any size), or larger than MAX_DECODE_SIDE."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow warns of EXIF it cannot parse without naming the file; the image is then read upright.
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data)) as image:
                (width, height), kind = image.size, image.format
                orientation = image.getexif().get(_EXIF_ORIENTATION) if kind in ("JPEG", "MPO") else None
    except Image.DecompressionBombError:
        return f"its header claims over {2 * Image.MAX_IMAGE_PIXELS:,} pixels"  # where Pillow raises
    except Exception:  # noqa: BLE001  (Pillow raises many types for bytes it cannot identify)
        if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 24:
            return "corrupt or not an image file"
        # Pillow refuses a PNG for a bad checksum on a text chunk, which libpng only warns of: the size is
        # in the IHDR chunk that must come first, and OpenCV decides.
        (width, height), kind, orientation = struct.unpack(">II", data[16:24]), "PNG", None
    if max(width, height) > MAX_DECODE_SIDE:
        return f"its header claims {width}x{height} pixels, over {MAX_DECODE_SIDE} a side (GZ2 images are 424x424)"
    return _Header(kind, orientation)


def nearest_contour(contours, centre: tuple[float, float]) -> np.ndarray | None:
    """The contour of area >= MIN_AREA whose centroid is nearest `centre` (x, y), or None.

    Ties keep the first contour found, as a plain `<` scan does.
    """
    best, best_distance = None, np.inf
    for contour in contours:
        # contourArea is cheap; most contours are noise specks that stop here.
        if cv2.contourArea(contour) < MIN_AREA:
            continue
        moments = cv2.moments(contour)
        dx = moments["m10"] / moments["m00"] - centre[0]
        dy = moments["m01"] / moments["m00"] - centre[1]
        distance = dx * dx + dy * dy
        if distance < best_distance:
            best, best_distance = contour, distance
    return best


def galaxy_contour(gray: np.ndarray) -> np.ndarray | None:
    """The outline of the central galaxy in a grayscale image (steps 1-3 above), or None."""
    blurred = cv2.GaussianBlur(gray, _BLUR_KERNEL, 0)
    _, mask = cv2.threshold(blurred, THRESHOLD, 255, cv2.THRESH_BINARY)
    mask = cv2.dilate(mask, _DILATE_KERNEL)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    height, width = gray.shape
    return nearest_contour(contours, (width / 2, height / 2))


def galaxy_box(gray: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x, y, w, h) of the central galaxy in a grayscale image, or None."""
    contour = galaxy_contour(gray)
    return None if contour is None else cv2.boundingRect(contour)


def central_square(height: int, width: int, fraction: int) -> tuple[slice, slice]:
    """Rows and columns of the central square whose side is 1/fraction of the image.

    For a 424x424 image, fraction 4 gives pixels 159..264 and fraction 2 gives 106..317.
    """
    half_h, half_w = height // (2 * fraction), width // (2 * fraction)
    return (
        slice(height // 2 - half_h, height // 2 + half_h),
        slice(width // 2 - half_w, width // 2 + half_w),
    )


def _box_inside(box: tuple[int, int, int, int], rows: slice, cols: slice) -> bool:
    x, y, w, h = box
    return cols.start <= x and x + w <= cols.stop and rows.start <= y and y + h <= rows.stop


def choose_branch(box: tuple[int, int, int, int] | None, height: int, width: int) -> str:
    """Which of BRANCHES the seed's rules pick for a galaxy box in an image of this size."""
    if box is None:
        return "fallback"
    if _box_inside(box, *central_square(height, width, 4)):
        return "center106"
    if _box_inside(box, *central_square(height, width, 2)):
        return "center212"
    return "full"


def crop_image(image: np.ndarray, size: int = 106, channels: int = 1) -> tuple[np.ndarray, str]:
    """Crop the central galaxy the seed's way: returns (uint8 (size, size, channels), branch).

    `image` is (H, W) grayscale or (H, W, 3) BGR uint8; `channels=3` needs BGR and keeps the
    colour with the same geometry (the decision is always made on grayscale). Values stay
    0..255: scaling to [0, 1] belongs to the input pipeline.

    Example:

    ```python
    crop, branch = crop_image(cv2.imread("images/100008.jpg"))
    crop.shape, branch  # ((106, 106, 1), "center212")
    ```
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a (H, W) or (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if channels == 3 and image.ndim == 2:
        raise ValueError("channels=3 needs a (H, W, 3) BGR image, got a grayscale one")
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height, width = gray.shape
    branch = choose_branch(galaxy_box(gray), height, width)
    source = gray if channels == 1 else image
    if branch in ("center106", "center212"):
        source = source[central_square(height, width, 4 if branch == "center106" else 2)]
    if source.shape[:2] != (size, size):
        source = cv2.resize(source, (size, size), interpolation=cv2.INTER_LINEAR)
    return source.reshape(size, size, channels), branch


def to_unit(crops: np.ndarray) -> np.ndarray:
    """uint8 crops (any shape) scaled to [0, 1] float32: the crop as the network sees it.

    Training batches, a logged model's input example and served predictions all
    scale through here, so they cannot drift apart.
    """
    return crops.astype(np.float32) / np.float32(255.0)

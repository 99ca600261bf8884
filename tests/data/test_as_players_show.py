"""Videos and images read as a player shows them: display rotation and mirroring, a clock that does not start at
0, variable frame rates, non-square pixels, EXIF orientation, bit depths, palettes and transparency.

Every file is made here with PyAV or Pillow. The reference is what ffmpeg/ffplay (and players built on them,
mpv and VLC) and image viewers show; each test says what that is. Frames carry a red block in the stored top-left
corner and a green block in the stored top-right one, so the corners of what comes out say how it was turned.
"""

from __future__ import annotations

import bisect
import dataclasses
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from hvm1.data import Display, read_clip, read_clips, read_image, video_duration, whole_frame_preset
from hvm1.data.transforms import video_eval_preset

HEIGHT, WIDTH, BLOCK = 48, 64, 16
RED, GREEN = (255, 0, 0), (0, 255, 0)


def marked_frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Frame `index`: flat grey 10 + 2 * index (so it shows its index), red block top-left, green top-right."""
    pixels = np.full((height, width, 3), 10 + 2 * index, np.uint8)
    pixels[:BLOCK, :BLOCK] = RED
    pixels[:BLOCK, -BLOCK:] = GREEN
    return pixels


def encode(
    path: Path,
    pts: list[int],
    time_base: Fraction = Fraction(1, 10),
    codec: str = "libx264",
    size: tuple[int, int] = (HEIGHT, WIDTH),
    rotation: tuple[int, bool, bool] | None = None,
    sample_aspect: Fraction | None = None,
) -> Path:
    """A video whose frame i (marked_frame(i)) is presented at pts[i] * time_base; `rotation` is
    `set_display_rotation`'s (counter-clockwise degrees, hflip, vflip), `sample_aspect` the stored pixels'."""
    height, width = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=round(1 / time_base) if time_base.numerator == 1 else 30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p" if codec != "ffv1" else "yuv444p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation is not None:
            degrees, hflip, vflip = rotation
            stream.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        if sample_aspect is not None:
            stream.codec_context.sample_aspect_ratio = sample_aspect
        for index, stamp in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(marked_frame(index, height, width), format="rgb24")
            frame.pts, frame.time_base = stamp, time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def corners(frame: torch.Tensor) -> dict[str, str]:
    """Which marker each corner of an (H, W, 3) frame shows: 'red', 'green' or '' (neither)."""
    height, width = frame.shape[:2]
    seen = {}
    for name, (y, x) in {
        "top-left": (2, 2),
        "top-right": (2, width - 3),
        "bottom-left": (height - 3, 2),
        "bottom-right": (height - 3, width - 3),
    }.items():
        red, green, _ = frame[y, x].tolist()
        seen[name] = "red" if red > 200 and green < 60 else "green" if green > 200 and red < 60 else ""
    return seen


def shown(**where: str) -> dict[str, str]:
    """The corners a player shows: the named ones hold their marker, the others neither."""
    names = ("top-left", "top-right", "bottom-left", "bottom-right")
    return {name: where.get(name.replace("-", "_"), "") for name in names}


def decoded_times(path: Path) -> list[float]:
    """Every frame's time as PyAV's full decode gives it, on the stream's own clock, sorted."""
    with av.open(str(path)) as container:
        return sorted(frame.time for frame in container.decode(video=0))


# set_display_rotation(degrees counter-clockwise, hflip, vflip) -> what ffplay shows (ffmpeg's default
# -autorotate): the rotation first, then the mirror, as the display matrix says.
ROTATIONS = [
    ((90, False, False), (64, 48), shown(top_left="green", bottom_left="red"), Display(270)),  # a phone held upright
    ((-90, False, False), (64, 48), shown(top_right="red", bottom_right="green"), Display(90)),
    ((180, False, False), (48, 64), shown(bottom_right="red", bottom_left="green"), Display(180)),  # upside down
    ((0, True, False), (48, 64), shown(top_right="red", top_left="green"), Display(0, True)),  # a selfie mirror
    ((0, False, True), (48, 64), shown(bottom_left="red", bottom_right="green"), Display(180, True)),
    ((90, True, False), (64, 48), shown(bottom_right="red", top_right="green"), Display(90, True)),
    ((-90, True, False), (64, 48), shown(top_left="red", bottom_left="green"), Display(270, True)),  # transposed
]


@pytest.mark.parametrize("container", ["mp4", "mov"])
@pytest.mark.parametrize("rotation, size, seen, display", ROTATIONS, ids=lambda value: str(value))
def test_display_rotation_is_applied_as_players_do(tmp_path, container, rotation, size, seen, display):
    path = encode(tmp_path / f"rotated.{container}", list(range(10)), rotation=rotation)
    clip = read_clip(path, 4, 2, 10.0, start=0.0)
    assert clip.frames.shape == (4, *size, 3)
    assert corners(clip.frames[0]) == seen
    assert clip.display == display
    # Resized to a short side: the shown picture's short side, still upright.
    small = read_clip(path, 2, 2, 10.0, start=0.0, short_side=24)
    assert small.frames.shape == (2, *(side // 2 for side in size), 3)
    assert corners(small.frames[0]) == seen
    # autorotate=False (ffmpeg -noautorotate): the frames as stored.
    stored = read_clip(path, 2, 2, 10.0, start=0.0, autorotate=False)
    assert stored.frames.shape == (2, HEIGHT, WIDTH, 3)
    assert corners(stored.frames[0]) == shown(top_left="red", top_right="green")
    assert stored.display == Display()


@pytest.mark.parametrize(
    "container, codec", [("mov", "libx265"), ("mp4", "libx265"), ("mkv", "libx264"), ("webm", "libvpx-vp9")]
)
def test_rotation_in_the_containers_and_codecs_phones_and_browsers_write(tmp_path, container, codec):
    # An iPhone's HEVC MOV, an Android's HEVC MP4, a Matroska and a browser's VP9 WebM recording, each held upright
    # (stored 64 x 48, turned 90 degrees clockwise): ffplay shows them 48 wide, 64 tall.
    path = encode(tmp_path / f"upright.{container}", list(range(5)), codec=codec, rotation=(-90, False, False))
    clip = read_clip(path, 1)
    assert clip.frames.shape == (1, 64, 48, 3)
    assert corners(clip.frames[0]) == shown(top_right="red", bottom_right="green")


def test_a_video_without_display_matrix_is_left_as_stored(tmp_path):
    path = encode(tmp_path / "plain.mp4", list(range(5)))
    clip = read_clip(path, 2, 1, 10.0, start=0.0)
    assert corners(clip.frames[0]) == shown(top_left="red", top_right="green")
    assert clip.display == Display() and clip.frames.is_contiguous()


def test_presets_and_read_clips_get_upright_frames(tmp_path):
    # What every command reads through: a whole-frame preset keeps the portrait shape of a phone video (ffplay
    # shows it 48 wide, 64 tall); read_clips turns each clip alike.
    path = encode(tmp_path / "phone.mp4", list(range(20)), rotation=(-90, False, False))
    preset = whole_frame_preset(video_eval_preset(32, 4, (0.5,) * 3, (0.25,) * 3, sampling_rate=2), multiple=8)
    video, padded = preset.load(path, start=0.0)
    assert video.shape == (3, 4, 40, 32) and padded == 0  # (C, T, H, W): short side 32, portrait
    stored, _ = dataclasses.replace(preset, autorotate=False).load(path, start=0.0)
    assert stored.shape == (3, 4, 32, 40)
    for clip in read_clips(path, [0.0, "center"], 2, 2, 10.0):
        assert corners(clip.frames[0]) == shown(top_right="red", bottom_right="green")


# A clock that starts later than 0: frames at 5.0 s, 5.1 s, ... on the stream's clock. ffplay starts playing at
# the first frame (its progress bar at 0), ffprobe gives start_time 5.0.
@pytest.mark.parametrize("container", ["mp4", "mkv", "ts", "mov"])
def test_times_count_from_the_first_frame(tmp_path, container):
    path = encode(tmp_path / f"late.{container}", [50 + index for index in range(30)])  # 3 s from 5.0 s
    stream_times = decoded_times(path)
    assert stream_times[0] == pytest.approx(5.0)
    clip = read_clip(path, 4, 3, 30.0, start=0.0)  # every 0.1 s from the first frame
    assert clip.origin == pytest.approx(5.0)
    assert clip.times.tolist() == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert (clip.times + clip.origin).tolist() == pytest.approx(stream_times[:4])  # the stream's clock
    grey = clip.frames[:, HEIGHT - 8 :, : WIDTH // 2].float().mean(dim=(1, 2, 3))  # away from the markers
    assert grey.tolist() == pytest.approx([10, 12, 14, 16], abs=1.5)  # frames 0-3, not the first one 4 times
    assert video_duration(path) == pytest.approx(3.0, abs=0.11)
    span = 3 * 3 / 30.0
    center = read_clip(path, 4, 3, 30.0, start="center")
    assert center.instants[0].item() == pytest.approx((video_duration(path) - span) / 2)
    assert center.padded == 0
    first, last = (read_clip(path, 4, 3, 30.0, start=(index, 5)) for index in (0, 4))
    assert first.times[0].item() == 0.0
    assert last.times[-1].item() == pytest.approx(2.9) and last.padded == 0
    for seed in range(5):
        drawn = read_clip(path, 4, 3, 30.0, start="random", generator=torch.Generator().manual_seed(seed))
        assert 0.0 <= drawn.instants[0].item() and drawn.instants[-1].item() <= 2.9 + 1e-6 and drawn.padded == 0


def test_variable_frame_rate_with_a_late_start_stays_exact(tmp_path):
    # Frames at irregular moments from 5 s on (a phone slowing its rate in the dark), on a 1/1000 s clock:
    # the frame on screen at each instant is the last one shown at or before it, as a player holds a frame.
    gaps = [33, 33, 34, 100, 100, 17, 17, 16, 200, 33, 33, 34, 66, 67, 250, 33]
    stamps = list(np.cumsum([5000] + gaps))
    path = encode(tmp_path / "vfr.mkv", stamps, time_base=Fraction(1, 1000), codec="ffv1")
    times = [(stamp - 5000) / 1000 for stamp in stamps]
    for start in [0.0, 0.1, 0.45, 0.8]:
        clip = read_clip(path, 8, 2, 30.0, start=start)
        expected = [times[max(bisect.bisect_right(times, instant + 1e-6) - 1, 0)] for instant in clip.instants.tolist()]
        assert clip.times.tolist() == expected, start
        indices = [times.index(time) for time in expected]
        grey = clip.frames[:, HEIGHT - 8 :, : WIDTH // 2].float().mean(dim=(1, 2, 3))
        assert grey.tolist() == pytest.approx([10 + 2 * index for index in indices], abs=1), start  # frames 2 apart


# Non-square pixels: stored 48 x 48 with a 4:3 sample aspect ratio; players show 64 x 48 (display aspect 4:3).
@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_anamorphic_video_is_stretched_to_its_display_aspect(tmp_path, container):
    path = encode(tmp_path / f"anamorphic.{container}", list(range(5)), size=(48, 48), sample_aspect=Fraction(4, 3))
    clip = read_clip(path, 2, 1, 10.0, start=0.0)
    assert clip.frames.shape == (2, 48, 64, 3)
    assert clip.display.sample_aspect == Fraction(4, 3)
    assert corners(clip.frames[0]) == shown(top_left="red", top_right="green")
    red_columns = (clip.frames[0, 4, :, 0] > 200) & (clip.frames[0, 4, :, 1] < 60)
    assert int(red_columns.sum()) == pytest.approx(BLOCK * 4 / 3, abs=2)  # the 16-pixel block shown 21 wide
    assert read_clip(path, 2, 1, 10.0, start=0.0, short_side=24).frames.shape == (2, 24, 32, 3)


def test_anamorphic_and_rotated(tmp_path):
    # Stretched first (the aspect belongs to the stored pixels), then turned: ffplay shows 48 wide, 64 tall.
    path = encode(
        tmp_path / "both.mp4", list(range(5)), size=(48, 48), sample_aspect=Fraction(4, 3), rotation=(-90, False, False)
    )
    clip = read_clip(path, 2, 1, 10.0, start=0.0)
    assert clip.frames.shape == (2, 64, 48, 3)
    assert corners(clip.frames[0]) == shown(top_right="red", bottom_right="green")


# Images. EXIF orientation: what a photo viewer (and a browser) shows for each of the eight tags.
EXIF = {
    1: ((30, 40), shown(top_left="red", top_right="green")),
    2: ((30, 40), shown(top_right="red", top_left="green")),  # mirrored
    3: ((30, 40), shown(bottom_right="red", bottom_left="green")),  # upside down
    4: ((30, 40), shown(bottom_left="red", bottom_right="green")),
    5: ((40, 30), shown(top_left="red", bottom_left="green")),
    6: ((40, 30), shown(top_right="red", bottom_right="green")),  # a phone photo taken upright
    7: ((40, 30), shown(bottom_right="red", top_right="green")),
    8: ((40, 30), shown(bottom_left="red", top_left="green")),
}


def marked_image(height: int = 30, width: int = 40) -> Image.Image:
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[:8, :8] = RED
    pixels[:8, -8:] = GREEN
    return Image.fromarray(pixels)


@pytest.mark.parametrize("orientation", sorted(EXIF))
def test_exif_orientation_is_applied(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"photo{orientation}.jpg"
    marked_image().save(path, quality=95, exif=exif)
    size, seen = EXIF[orientation]
    image = read_image(path)
    assert image.shape == (3, *size)
    assert corners(image.permute(1, 2, 0)) == seen
    stored = read_image(path, autorotate=False)
    assert corners(stored.permute(1, 2, 0)) == shown(top_left="red", top_right="green")


def saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def row(image: torch.Tensor) -> list[list[int]]:
    """The RGB values along the first row of a (3, H, W) image."""
    return image[:, 0, :].T.tolist()


# Bit depths and modes: viewers scale a 16-bit (or 32-bit) sample by its range, show float samples from 0.0
# (black) to 1.0 (white), and show a greyscale image grey in all three channels.
def test_16_bit_greyscale_is_scaled_not_saturated(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], np.uint16)  # black, 1/255, mid grey, white
    for suffix in ("png", "tif", "pgm"):  # Pillow reads them as modes I;16, I;16 and I
        image = read_image(saved(Image.fromarray(values), tmp_path / f"grey16.{suffix}"))
        assert row(image) == [[0] * 3, [1] * 3, [128] * 3, [255] * 3], suffix
    big_endian = read_image(saved(Image.fromarray(values.astype(">u2")), tmp_path / "grey16b.tif"))  # I;16B
    assert row(big_endian) == [[0] * 3, [1] * 3, [128] * 3, [255] * 3]


def test_32_bit_integer_and_float_images(tmp_path):
    integers = np.array([[0, 2**30, 2**31 - 1, -5]], np.int32)
    assert row(read_image(saved(Image.fromarray(integers), tmp_path / "int32.tif"))) == [
        [0] * 3,
        [128] * 3,
        [255] * 3,
        [0] * 3,
    ]
    floats = np.array([[0.0, 0.25, 1.0, 2.0, -1.0]], np.float32)
    assert row(read_image(saved(Image.fromarray(floats), tmp_path / "float.tif"))) == [
        [0] * 3,
        [64] * 3,
        [255] * 3,
        [255] * 3,
        [0] * 3,
    ]


def test_transparency_is_composited_on_the_background(tmp_path):
    # Alpha 0 shows the background, 255 the colour, 128 half of each (what a browser shows on a white page).
    rgba = np.array([[[200, 0, 0, 0], [200, 0, 0, 128], [200, 0, 0, 255]]], np.uint8)
    path = saved(Image.fromarray(rgba, "RGBA"), tmp_path / "rgba.png")
    assert row(read_image(path)) == [[255, 255, 255], [227, 127, 127], [200, 0, 0]]
    assert row(read_image(path, background=(0, 0, 0))) == [[0, 0, 0], [100, 0, 0], [200, 0, 0]]
    # Greyscale with alpha.
    grey_alpha = np.array([[[100, 0], [100, 128], [100, 255]]], np.uint8)
    path = saved(Image.fromarray(grey_alpha, "LA"), tmp_path / "la.png")
    assert row(read_image(path, background=(0, 0, 255))) == [[0, 0, 255], [50, 50, 177], [100, 100, 100]]
    # A palette with a transparent entry (GIF and PNG): index 0 is transparent, index 1 red.
    palette = Image.fromarray(np.array([[0, 1, 1, 0]], np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    for suffix in ("png", "gif"):
        path = saved(palette, tmp_path / f"palette.{suffix}", transparency=0)
        assert row(read_image(path)) == [[255, 255, 255], [255, 0, 0], [255, 0, 0], [255, 255, 255]], suffix
    # An RGB PNG with a transparent colour key.
    keyed = Image.fromarray(np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8))
    path = saved(keyed, tmp_path / "keyed.png", transparency=(10, 20, 30))
    assert row(read_image(path, background=(0, 255, 0))) == [[0, 255, 0], [40, 50, 60]]


def test_other_modes_read_as_rgb(tmp_path):
    # CMYK (print JPEG): no ink is white, magenta + yellow is red; a 1-bit image is black and white.
    cmyk = Image.fromarray(np.array([[[0, 0, 0, 0], [0, 255, 255, 0]]] * 8, np.uint8), "CMYK")
    image = read_image(saved(cmyk, tmp_path / "print.jpg", quality=100))
    assert np.allclose(row(image), [[255, 255, 255], [255, 0, 0]], atol=12)
    bits = Image.fromarray(np.array([[0, 255]], np.uint8)).convert("1")
    assert row(read_image(saved(bits, tmp_path / "bits.png"))) == [[0, 0, 0], [255, 255, 255]]
    grey = Image.fromarray(np.array([[0, 77, 255]], np.uint8), "L")
    assert row(read_image(saved(grey, tmp_path / "grey.png"))) == [[0] * 3, [77] * 3, [255] * 3]
    webp = read_image(saved(marked_image(), tmp_path / "photo.webp", lossless=True))
    assert corners(webp.permute(1, 2, 0)) == shown(top_left="red", top_right="green")


def encode_planes(path: Path, planes: np.ndarray, pix_fmt: str, color_range: int) -> Path:
    """Two frames of the given YUV planes (as `VideoFrame.from_ndarray` takes them for `pix_fmt`), flagged with
    `color_range` (1 limited, 2 full), losslessly (FFV1): the decoder hands back the planes as written."""
    height, width = planes.shape[0] * 2 // 3, planes.shape[1]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.color_range = color_range
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(planes, format=pix_fmt)
            frame.pts, frame.color_range = index, color_range
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.mark.parametrize("color_range, expected", [(1, [0, 128, 255, 255]), (2, [16, 126, 235, 255])])
def test_colour_range_follows_the_stream_flag(tmp_path, color_range, expected):
    # Luma 16, 126, 235, 255 with neutral chroma. Flagged limited ("tv", 1) players stretch 16-235 to black-white;
    # flagged full ("pc"/JPEG, 2) they show the values as they are.
    height, width = 16, 64
    planes = np.full((height * 3 // 2, width), 128, np.uint8)  # yuv420p: the Y plane, then U and V
    for column, luma in enumerate([16, 126, 235, 255]):
        planes[:height, 16 * column : 16 * (column + 1)] = luma
    frame = read_clip(encode_planes(tmp_path / "range.mkv", planes, "yuv420p", color_range), 1).frames[0]
    assert frame[8, 8::16, 0].tolist() == expected
    assert frame[8, 8::16].tolist() == [[value] * 3 for value in expected]  # grey: all three channels alike


@pytest.mark.parametrize("sample_aspect", [Fraction(20, 1), Fraction(1, 20)])
def test_an_absurd_sample_aspect_is_taken_as_square(tmp_path, sample_aspect):
    # 20:1 pixels are no camera's: a damaged header. Read as written, a 48 px frame would be 960 px wide.
    path = encode(tmp_path / "absurd.mkv", list(range(3)), size=(48, 48), sample_aspect=sample_aspect)
    with av.open(str(path)) as container:
        assert container.streams.video[0].sample_aspect_ratio == sample_aspect  # the file does say so
    clip = read_clip(path, 1)
    assert clip.frames.shape == (1, 48, 48, 3) and clip.display == Display()


@pytest.mark.parametrize("color_range, expected", [(1, [0, 0, 130, 255, 255]), (2, [0, 16, 128, 235, 255])])
def test_10_bit_video_reaches_white(tmp_path, color_range, expected):
    # 10-bit luma 0, 64, 512, 940, 1023 (limited range: black at 64, white at 940; full: 0-1023), as HEVC phone
    # and camera video carries it: players show limited 940 and full 1023 as white, and 512 at its share of it.
    height, width = 16, 80
    planes = np.full((height * 3 // 2, width), 512, np.uint16)  # yuv420p10le: the Y plane, then U and V
    for column, luma in enumerate([0, 64, 512, 940, 1023]):
        planes[:height, 16 * column : 16 * (column + 1)] = luma
    path = encode_planes(tmp_path / "ten_bit.mkv", planes, "yuv420p10le", color_range)
    frame = read_clip(path, 1).frames[0]
    assert frame[8, 8::16, 0].tolist() == expected
    assert read_clip(path, 1, short_side=8).frames[0, 4, 4::8, 0].tolist() == expected  # resized alike

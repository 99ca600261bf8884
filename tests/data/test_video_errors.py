"""Every kind of bad input raises VideoError naming the file and the reason; nothing else is read instead."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from data_files import encode_video, packet_spans, zero_bytes
from hvm1.data import VideoError, read_clip, read_image
from reference_data import VIDEOS, fixture


def raises_video_error(path: Path, reason: str, **arguments) -> VideoError:
    with pytest.raises(VideoError) as caught:
        read_clip(path, **arguments)
    message = str(caught.value)
    assert str(path) in message and reason in message, message
    assert caught.value.path == path
    return caught.value


def test_missing_file(tmp_path):
    raises_video_error(tmp_path / "nothing.mp4", "no such file")


def test_directory(tmp_path):
    raises_video_error(tmp_path, "is a directory")


def test_text_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    raises_video_error(path, "not a video file")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.avi"
    path.write_bytes(b"")
    raises_video_error(path, "not a video file")


def test_audio_only(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        for index in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, index * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    raises_video_error(path, "no video stream (only audio streams)")


def test_zero_decodable_frames(tmp_path):
    # A real video stream whose every packet is zeroed: the container is fine, no frame decodes.
    good = encode_video(tmp_path / "good.mkv", fps=10, num_frames=10)
    broken = zero_bytes(good, tmp_path / "blank.mkv", packet_spans(good))
    raises_video_error(broken, "no decodable video frame")
    raises_video_error(broken, "no decodable video frame", start="center")


def test_undecodable_metadata_is_no_reason_to_refuse(tmp_path):
    good = encode_video(tmp_path / "good.mkv", fps=10, num_frames=10, title="TITLETITLE")
    data = good.read_bytes()
    assert data.count(b"TITLETITLE") == 1
    bad_title = tmp_path / "title.mkv"
    bad_title.write_bytes(data.replace(b"TITLETITLE", b"\xff\xfe\xfd\xfcTITLE\x9e"))  # not UTF-8
    clip = read_clip(bad_title, 4, start=0.0)
    assert torch.equal(clip.frames, read_clip(good, 4, start=0.0).frames)


def test_video_stream_without_a_decoder(tmp_path):
    good = encode_video(tmp_path / "good.mkv", fps=10, num_frames=10)
    data = good.read_bytes()
    assert data.count(b"V_MPEG4/ISO/ASP") == 1
    unknown = tmp_path / "unknown.mkv"
    unknown.write_bytes(data.replace(b"V_MPEG4/ISO/ASP", b"V_QQQQQ/ISO/ASP"))  # a codec id FFmpeg does not know
    for start in (0.0, "center"):
        raises_video_error(unknown, "no video stream FFmpeg can decode", start=start)


def test_broken_stream_in_the_middle(tmp_path):
    good = encode_video(tmp_path / "good.avi", fps=10, num_frames=40)
    spans = packet_spans(good)
    broken = zero_bytes(good, tmp_path / "broken.avi", spans[18:22])  # frames at 1.8 .. 2.1 s
    raises_video_error(broken, "broken video stream near", start=1.0)
    # A clip that ends before the damage is read, and is what a good file gives.
    assert read_clip(broken, 4, start=0.0).times.tolist() == read_clip(good, 4, start=0.0).times.tolist()


def test_damaged_real_video(tmp_path):
    source = fixture(VIDEOS / "box.mp4")
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 20000] = bytes(20000)
    broken = tmp_path / "box.mp4"
    broken.write_bytes(bytes(data))
    raises_video_error(broken, "broken video stream", start="center")


# Starts that reach the cut: a cut MP4 keeps its full index (so "center" is past the cut), a cut AVI loses
# its index and its duration estimate shrinks to what is left (so its center is still intact).
@pytest.mark.parametrize("name, starts", [("box.mp4", ["center", (4, 5), 11.0]), ("vtest.avi", [(4, 5), 60.0])])
def test_truncated_copy(tmp_path, name, starts):
    source = fixture(VIDEOS / name)
    cut = tmp_path / name
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    for start in starts:
        error = raises_video_error(cut, "", start=start)
        assert "truncated" in error.reason or "broken" in error.reason, error.reason


def test_truncated_header(tmp_path):
    source = fixture(VIDEOS / "cup.mp4")
    cut = tmp_path / "cup.mp4"
    cut.write_bytes(source.read_bytes()[:2000])
    raises_video_error(cut, "not a video file")


def test_error_survives_pickling():
    error = VideoError("/data/a.mp4", "no such file")
    again = pickle.loads(pickle.dumps(error))
    assert (again.path, again.reason, str(again)) == (error.path, error.reason, str(error))
    # How a DataLoader re-raises a worker's exception: from its text alone.
    assert str(VideoError("worker said: /data/a.mp4: no such file")) == "worker said: /data/a.mp4: no such file"


def test_bad_images(tmp_path, images):
    (tmp_path / "notes.jpg").write_text("not an image")
    with pytest.raises(VideoError, match="not an image file"):
        read_image(tmp_path / "notes.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(images[0].read_bytes()[:3000])
    with pytest.raises(VideoError, match="truncated or damaged image"):
        read_image(cut)
    with pytest.raises(VideoError, match="no such file"):
        read_image(tmp_path / "missing.png")
    shutil.copy(images[0], tmp_path / "fine.jpg")
    assert read_image(tmp_path / "fine.jpg").shape[0] == 3

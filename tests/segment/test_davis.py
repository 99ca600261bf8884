"""DAVIS-2017 scores against cases worked by hand, the palette, indexed PNGs and the CSV layout."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from hvm1.data import VideoError
from hvm1.segment import (
    ObjectScore,
    boundary_f_measure,
    davis_palette,
    davis_sequence_names,
    davis_sequences,
    global_scores,
    read_mask,
    region_similarity,
    score_sequence,
    statistics,
    without_void,
    write_indexed_png,
    write_score_tables,
)
from hvm1.segment.davis import VOID_ID, boundary_map


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_region_similarity_hand_worked():
    truth = square(20, 4, 4, 4)  # 16 pixels
    shifted = square(20, 4, 6, 4)  # overlaps 2 of its 4 columns: 8 pixels in common, 24 in the union
    assert region_similarity(truth, shifted) == pytest.approx(8 / 24)
    assert region_similarity(truth, truth) == 1.0
    assert region_similarity(truth, np.zeros_like(truth)) == 0.0
    assert region_similarity(np.zeros_like(truth), np.zeros_like(truth)) == 1.0  # both empty


def test_boundary_is_the_ring_offset_towards_the_origin():
    # A filled r x r square at rows/cols a..b: its boundary pixels are the ring of the square (a-1..b) x (a-1..b).
    mask = square(12, 3, 3, 5)  # rows and columns 3..7
    ring = square(12, 2, 2, 6) & ~square(12, 3, 3, 4)
    np.testing.assert_array_equal(boundary_map(mask), ring)
    assert boundary_map(mask).sum() == 6 * 6 - 4 * 4
    # Against the border: the last row and column compare only along it, and the corner is never boundary.
    full = np.ones((5, 5), dtype=bool)
    assert boundary_map(full).sum() == 0


def test_boundary_f_measure_hand_worked():
    # 100 x 100 image: diagonal 141.4 px, so matches within ceil(0.008 * 141.4) = 2 px (a disk of radius 2).
    truth = square(100, 30, 30, 10)  # boundary: an 11 x 11 ring of 40 pixels
    assert boundary_f_measure(truth, square(100, 30, 32, 10)) == 1.0  # 2 px away: every pixel matches
    # 3 px to the right: of the prediction's 40 ring pixels, 16 are more than 2 px from the truth's ring
    # (1 at the end of the top row, 1 of the bottom row, 5 of the 9 inner left-column pixels, all 9 of the
    # right column), so P = 24 / 40 and, by symmetry, R = 24 / 40: F = 0.6.
    assert boundary_f_measure(truth, square(100, 30, 33, 10)) == pytest.approx(0.6)
    empty = np.zeros_like(truth)
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(truth, empty) == 0.0  # P = 1, R = 0
    assert boundary_f_measure(empty, truth) == 0.0  # P = 0, R = 1


def test_boundary_threshold_follows_the_diagonal():
    # 300 x 400: diagonal 500 px, ceil(0.008 * 500) = 4 px; a 4 px shift matches, 5 px does not fully.
    truth = np.zeros((300, 400), dtype=bool)
    truth[100:150, 100:150] = True
    assert boundary_f_measure(truth, np.roll(truth, 4, axis=1)) == 1.0
    assert boundary_f_measure(truth, np.roll(truth, 5, axis=1)) < 1.0


def test_statistics_mean_recall_decay_hand_worked():
    values = np.arange(10) / 10  # 0.0 .. 0.9
    mean, recall, decay = statistics(values)
    assert mean == pytest.approx(0.45)
    assert recall == pytest.approx(0.4)  # 0.6, 0.7, 0.8, 0.9 are above 0.5
    # cuts round(linspace(1, 10, 5)) - 1 = 0, 2, 5, 7, 9: first bin frames 0..2, last bin frames 7..9.
    assert decay == pytest.approx(0.1 - 0.8)


def test_score_sequence_leaves_out_first_and_last_frames():
    truth = [square(40, 5, 5, 10).astype(np.uint8) for _ in range(5)]
    truth[0][30:35, 30:35] = 2  # two objects: ids 1..2 from the first annotation
    predicted = [mask.copy() for mask in truth]
    predicted[0][:] = 0  # the first and last frames are not scored: spoiling them changes nothing
    predicted[4][:] = 0
    predicted[2] = np.zeros_like(predicted[2])  # frame 2: both objects lost
    scores = score_sequence("seq", truth, predicted)
    assert [s.name for s in scores] == ["seq_1", "seq_2"]
    assert scores[0].j == (1.0, 0.0, 1.0)
    # object 2 is absent from frames 1..3 of the truth: empty vs empty is a perfect 1
    assert scores[1].j == (1.0, 1.0, 1.0) and scores[1].f == (1.0, 1.0, 1.0)


def test_tables_in_davis_layout(tmp_path):
    scores = [
        ObjectScore("a_1", (1.0, 0.5, 0.0, 0.25), (1.0, 1.0, 0.5, 0.5)),
        ObjectScore("b_1", (0.5,) * 4, (0.0,) * 4),
    ]
    global_path, sequence_path = write_score_tables(scores, tmp_path)
    assert global_path.name == "global_results-val.csv" and sequence_path.name == "per-sequence_results-val.csv"
    with open(global_path) as file:
        rows = list(csv.reader(file))
    assert rows[0] == ["J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay"]
    j_mean = (np.mean([1.0, 0.5, 0.0, 0.25]) + 0.5) / 2
    f_mean = (0.75 + 0.0) / 2
    values = [float(v) for v in rows[1]]
    assert values[1] == pytest.approx(j_mean, abs=5e-4) and values[4] == pytest.approx(f_mean, abs=5e-4)
    assert values[0] == pytest.approx((j_mean + f_mean) / 2, abs=5e-4)
    with open(sequence_path) as file:
        rows = list(csv.reader(file))
    assert rows == [["Sequence", "J-Mean", "F-Mean"], ["a_1", "0.438", "0.750"], ["b_1", "0.500", "0.000"]]


def test_palette_and_indexed_png_round_trip(tmp_path):
    palette = davis_palette()
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert len({tuple(c) for c in palette}) == 256
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:10, 5:20], mask[15:25, 10:30] = 1, 3
    path = write_indexed_png(mask, tmp_path / "a" / "00000.png")
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[:12] == palette[:4].ravel().tolist()
    np.testing.assert_array_equal(read_mask(path), mask)
    Image.fromarray(palette[mask]).save(tmp_path / "rgb.png")  # the same mask drawn in the palette colours
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), mask)
    rgb = palette[mask].copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(VideoError, match="not DAVIS palette colours"):
        read_mask(tmp_path / "odd.png")
    with pytest.raises(VideoError, match="no such mask file"):
        read_mask(tmp_path / "missing.png")


def test_void_pixels_are_background_as_the_official_evaluation_sets_them():
    # The official DAVIS-2017 evaluation sets 255 to 0 before counting objects (1..the largest id of the
    # first annotation): void is neither an object nor scored apart from the background.
    truth = [square(40, 5, 5, 10).astype(np.uint8) for _ in range(4)]
    for mask in truth:
        mask[0:3, :] = VOID_ID  # an unlabelled band along the top
        mask[20:30, 20:30] = 2
    predicted = [np.where(mask == VOID_ID, 0, mask) for mask in truth]
    predicted[1][5:15, 5:10] = 0  # frame 1: half of object 1 lost
    scores = score_sequence("seq", truth, predicted)
    assert [s.name for s in scores] == ["seq_1", "seq_2"]  # not 255 objects
    assert scores[0].j == (0.5, 1.0) and scores[1].j == (1.0, 1.0)
    # Predicting the void band as object 1 costs what predicting any background as object 1 costs.
    spoiled = [mask.copy() for mask in predicted]
    spoiled[2][0:3, :] = 1
    assert score_sequence("seq", truth, spoiled)[0].j[1] == pytest.approx(100 / (100 + 3 * 40))
    np.testing.assert_array_equal(without_void(truth[0]), predicted[0])


def test_objects_without_a_scored_frame_stay_out_of_the_means_and_tables(tmp_path):
    truth = [square(40, 5, 5, 10).astype(np.uint8)]  # one frame: its first and last, never scored
    empty = score_sequence("one", truth, truth)
    assert [(s.name, s.scored) for s in empty] == [("one_1", False)]
    two_frames = score_sequence("two", truth * 2, truth * 2)
    assert [s.scored for s in two_frames] == [False]
    scored = [ObjectScore("a_1", (1.0, 0.5), (1.0, 0.0))]
    with pytest.raises(ValueError, match="none of 2 objects has a scored frame"):
        global_scores(empty + two_frames)
    with pytest.raises(ValueError, match="no global scores"):
        write_score_tables(empty, tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()  # refused before anything is written
    assert global_scores(scored + empty) == global_scores(scored)
    global_path, sequence_path = write_score_tables(scored + empty + two_frames, tmp_path)
    assert sequence_path.read_text() == "Sequence,J-Mean,F-Mean\na_1,0.750,0.500\n"
    assert "nan" not in global_path.read_text().lower()


def test_tables_end_their_lines_with_lf(tmp_path):
    global_path, sequence_path = write_score_tables([ObjectScore("a_1", (1.0,), (1.0,))], tmp_path)
    for path in (global_path, sequence_path):
        data = path.read_bytes()
        assert b"\r" not in data and data.endswith(b"\n") and data.count(b"\n") == 2


def test_a_sequence_listed_twice_is_run_once(tmp_path):
    listing = tmp_path / "ImageSets" / "2017" / "val.txt"
    listing.parent.mkdir(parents=True)
    listing.write_text("b\na\n\nb\r\nc\na\n")
    assert davis_sequence_names(tmp_path) == ["b", "a", "c"]
    assert davis_sequence_names(tmp_path, names=["x", "x", "y"]) == ["x", "y"]
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 6)).save(_folder(tmp_path / "JPEGImages" / "480p" / name) / "00000.jpg")
        write_indexed_png(np.zeros((6, 8), np.uint8), tmp_path / "Annotations" / "480p" / name / "00000.png")
    assert [s.name for s in davis_sequences(tmp_path)] == ["b", "a", "c"]


def _folder(path):
    path.mkdir(parents=True, exist_ok=True)
    return path

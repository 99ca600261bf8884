"""`hvm1 reproduce` end to end: tiny finetuned models served by a local hub, data folders in the real layouts.

The zoo entries of one pretraining get a tiny architecture with their published class counts (174, 700, 1000),
so their names and their published figures stay; the fake hub serves random-weight checkpoints in the
published format. The data folders are built here: SSv2 webm videos with a copy of the published list (one of
its videos missing), Kinetics-700 class folders (one spelled with underscores), ImageNet WordNet-id folders of
images, and a DAVIS-2017 folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import re

import numpy as np
import pytest
import torch
from PIL import Image

from eval_files import cut_clip
from hub_server import FakeHub, point_hub_client_at
from hvm1 import zoo
from hvm1.cli import main
from hvm1.eval import evaluate
from hvm1.eval.reproduce import TASKS, ReproduceConfig, read_published_list, reproduce, validation_list
from hvm1.labels import imagenet_synsets, label_set
from hvm1.models import ViTConfig, build_model
from hvm1.segment import write_indexed_png
from reference_data import VIDEOS, fixture, images

TINY = ViTConfig(img_size=28, patch_size=14, embed_dim=32, depth=1, num_heads=2, num_frames=4)
FINETUNINGS = ("ssv2-10shot", "ssv2-50shot", "kinetics-10shot", "kinetics-50shot", "imagenet-2pt")
SSV2, KINETICS, IMAGENET = TASKS


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = FakeHub()
    point_hub_client_at(monkeypatch, server.url, tmp_path / "hf")
    for seed, finetuning in enumerate(FINETUNINGS):
        entry = zoo.MODELS[f"vit_hvm1_{finetuning}"]
        config = TINY.replace(num_classes=entry.num_classes)
        monkeypatch.setitem(zoo.MODELS, entry.name, dataclasses.replace(entry, config=config))
        torch.manual_seed(seed)
        model = build_model(config)
        model.head.bias.data[0] = 50.0  # every example is predicted as class 0: top-1 is the share of class 0
        path = tmp_path / entry.filename
        torch.save({"model": model.state_dict(), "epoch": 0, "args": argparse.Namespace(**config.to_dict())}, path)
        server.files[(entry.repo_id, entry.filename)] = path.read_bytes()
    yield server
    server.stop()


@pytest.fixture
def data(tmp_path):
    """The four data folders; returns them with the SSv2 video that the published list names but is missing."""
    videos = fixture(VIDEOS)
    ssv2 = tmp_path / "ssv2"
    names = label_set("ssv2")
    chosen = [(names[0], "101111", 0.0), (names[0], "10430", 3.0), (names[5], "2222", 6.0), (names[173], "777", 9.0)]
    lines = []
    for name, video_id, start in chosen:
        folder = ssv2 / "val" / name
        folder.mkdir(parents=True, exist_ok=True)
        cut_clip(videos / "box.mp4", folder / f"{video_id}.webm", start, seconds=1.0, codec="libvpx")
        lines.append(f"/vast/eo41/ssv2/val/{name}/{video_id}.webm, {names.index(name)}")
    lines.append(f"/vast/eo41/ssv2/val/{names[7]}/404.webm, 7")  # listed, not there
    (ssv2 / "val.csv").write_text("\n".join(lines) + "\n")

    kinetics = tmp_path / "kinetics"
    for folder, start in (("abseiling", 0.0), ("acting_in_play", 4.0), ("zumba", 8.0)):
        (kinetics / folder).mkdir(parents=True)
        cut_clip(videos / "vtest.avi", kinetics / folder / f"{folder[:3]}_{int(start):06d}.mp4", start, seconds=1.0)

    imagenet = tmp_path / "imagenet"
    photographs = images()
    for number, ((wnid, _), image) in enumerate(zip([imagenet_synsets()[0], imagenet_synsets()[999]], photographs)):
        (imagenet / "val" / wnid).mkdir(parents=True)
        Image.open(image).convert("RGB").save(imagenet / "val" / wnid / f"ILSVRC2012_val_{number:08d}.JPEG")

    davis = tmp_path / "davis"
    frames = (davis / "JPEGImages" / "480p" / "cup", davis / "Annotations" / "480p" / "cup")
    for folder in frames:
        folder.mkdir(parents=True)
    pixels = np.asarray(Image.open(photographs[0]).convert("RGB").resize((128, 96)))
    for index in range(4):
        shifted = np.roll(pixels, 4 * index, axis=1)
        Image.fromarray(shifted).save(frames[0] / f"{index:05d}.jpg", quality=95)
        mask = np.zeros(shifted.shape[:2], dtype=np.uint8)
        mask[30:70, 40 + 4 * index : 80 + 4 * index] = 1
        write_indexed_png(mask, frames[1] / f"{index:05d}.png")
    (davis / "ImageSets" / "2017").mkdir(parents=True)
    (davis / "ImageSets" / "2017" / "val.txt").write_text("cup\n")
    return {"ssv2": ssv2, "kinetics": kinetics, "imagenet": imagenet, "davis": davis}


def measured_by_evaluate(name: str, examples, tmp_path, image_mode: bool) -> float:
    """The top-1 of `evaluate` over a manifest of the same files with their head indices, one view each."""
    manifest = tmp_path / f"{name}.csv"
    manifest.write_text("".join(f"{path},{label}\n" for path, label in zip(examples.files, examples.labels)))
    loaded = zoo.load_for_inputs(name, model_type="vit")
    return evaluate(
        loaded.model,
        manifest,
        preprocessing=loaded.preprocessing,
        image_mode=image_mode,
        views=None if image_mode else (1, 1),
    ).metrics.top1


@pytest.mark.slow
def test_reproduce_end_to_end_on_every_kind_of_data(hub, data, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [
            "reproduce",
            "--pretraining",
            "hvm1",
            *(f"--{name}={path}" for name, path in data.items()),
            "--out-dir",
            str(out),
            "--num-workers",
            "0",
            "--device",
            "cpu",
        ]
    )
    captured = capsys.readouterr()
    assert status == 1  # the missing SSv2 video is skipped and named
    missing = data["ssv2"] / "val" / label_set("ssv2")[7] / "404.webm"
    assert f"{missing}: listed, but not in {data['ssv2']}" in captured.err
    rows = list(csv.DictReader(open(out / "reproduce.csv")))
    assert [row["model"] for row in rows] == [f"vit_hvm1_{name}" for name in FINETUNINGS] + ["vit_hvm1_imagenet-2pt"]
    published = {(p, f): value for (p, f), value in zoo.PUBLISHED_TOP1.items() if p == "hvm1"}
    for row, finetuning, task in zip(rows, FINETUNINGS, (SSV2, SSV2, KINETICS, KINETICS, IMAGENET)):
        examples = validation_list(task, data[task.field])
        assert float(row["published"]) == published[("hvm1", finetuning)]
        share = 100 * np.mean(np.array(examples.labels) == 0)
        assert float(row["measured"]) == pytest.approx(share, abs=0.01)
        assert measured_by_evaluate(row["model"], examples, tmp_path, task.images) == pytest.approx(share)
        assert float(row["difference"]) == pytest.approx(float(row["measured"]) - float(row["published"]), abs=0.011)
        assert (row["measured_count"], row["listed"]) == (str(len(examples.files)), str(examples.listed))
        assert (row["multi_view"] == "-") == task.images
    assert (rows[0]["measured_count"], rows[0]["listed"], rows[0]["measured"]) == ("4", "5", "50.00")
    assert (rows[2]["measured_count"], rows[2]["listed"], rows[2]["measured"]) == ("3", "3", "33.33")
    assert rows[4]["measured"] == "50.00" and rows[0]["multi_view"] == "50.00"
    davis = rows[-1]
    assert davis["metric"] == "J&F-Mean" and float(davis["published"]) == zoo.PUBLISHED_DAVIS["hvm1"]["J&F-Mean"]
    scores = list(csv.DictReader(open(out / "davis" / "global_results-val.csv")))
    assert float(davis["measured"]) == pytest.approx(float(scores[0]["J&F-Mean"]), abs=0.001)
    markdown = (out / "reproduce.md").read_text()
    assert "one random clip and crop per video" in markdown and "2 clips x 3 crops" in markdown
    assert markdown in captured.out
    assert [line.split(",")[0] for line in (out / "skipped.csv").read_text().splitlines()] == ["path", str(missing)]


def test_a_published_list_is_read_and_checked_against_the_head(tmp_path):
    listing = tmp_path / "val.csv"
    name = label_set("ssv2")[3]
    listing.write_text(f"/vast/eo41/ssv2/val/{name}/1.webm, 3\n\n")
    assert read_published_list(listing) == [(name, "1.webm", 3)]
    listing.write_text(f"/vast/eo41/ssv2/val/{name}/1.webm, 4\n")
    with pytest.raises(ValueError, match=re.escape(f"gives '{name}' index 4, but the SSv2 head has it at 3")):
        validation_list(SSV2, tmp_path)
    listing.write_text("/vast/eo41/ssv2/val/Juggling/1.webm, 3\n")
    with pytest.raises(ValueError, match="lists class 'Juggling' .* not one of the 174 SSv2 classes"):
        validation_list(SSV2, tmp_path)
    listing.write_text("just a line\n")
    with pytest.raises(ValueError, match=r"val.csv:1: expected 'path/CLASS/ID.ext, index'"):
        read_published_list(listing)


def test_bad_data_folders_are_named_before_any_model_is_loaded(tmp_path, monkeypatch):
    import hvm1.eval.reproduce

    monkeypatch.setattr(hvm1.eval.reproduce, "load_for_command", lambda *a, **k: pytest.fail("a model was loaded"))
    with pytest.raises(ValueError, match="give at least one of --ssv2"):
        reproduce(ReproduceConfig(out_dir=tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="--kinetics .*nowhere: no such folder"):
        reproduce(ReproduceConfig(kinetics=tmp_path / "nowhere"))
    kinetics = tmp_path / "kinetics"
    (kinetics / "abseiling").mkdir(parents=True)
    (kinetics / "juggling footballs badly").mkdir()
    with pytest.raises(ValueError, match="class folders 'juggling footballs badly' are not Kinetics-700 classes"):
        reproduce(ReproduceConfig(kinetics=kinetics))
    ssv2 = tmp_path / "ssv2"
    ssv2.mkdir()
    (ssv2 / "val.csv").write_text(f"/data/val/{label_set('ssv2')[0]}/1.webm, 0\n")
    with pytest.raises(ValueError, match=r"--ssv2 .*ssv2 holds none of the 1 listed SSv2 examples \(e.g. "):
        reproduce(ReproduceConfig(ssv2=ssv2))
    imagenet = tmp_path / "imagenet"
    (imagenet / "n01440764").mkdir(parents=True)
    with pytest.raises(ValueError, match="its class folders hold no images"):
        reproduce(ReproduceConfig(imagenet=imagenet))
    with pytest.raises(ValueError, match="is not a DAVIS-2017 folder: no ImageSets/2017/val.txt"):
        reproduce(ReproduceConfig(davis=imagenet))
    assert not (tmp_path / "out").exists()

"""Class names: the published label sets shipped with the package, one's own names, and where names reach users.

The published finetuning numbered classes by sorted class-folder name; the shipped lists must be in that order,
with the counts of the published heads and the first and last names of the published validation lists.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

import hvm1
from hvm1.checkpoint import save_safetensors
from hvm1.cli import main
from hvm1.labels import (
    CLASS_NAMES_METADATA_KEY,
    LABEL_SETS,
    LabelsError,
    class_names_of,
    imagenet_synsets,
    label_set,
    read_labels,
)
from hvm1.models import ViTConfig, build_model
from hvm1.zoo import MODELS

TINY = ViTConfig(img_size=28, patch_size=14, embed_dim=32, depth=1, num_heads=2, num_frames=4, num_classes=5)


def test_each_published_set_has_the_published_count_first_and_last_names():
    ssv2, kinetics, imagenet = label_set("ssv2"), label_set("kinetics700"), label_set("imagenet1k")
    assert (len(ssv2), len(kinetics), len(imagenet)) == (174, 700, 1000)
    assert (ssv2[0], ssv2[-1]) == ("Approaching [something] with your camera", "[Something] falling like a rock")
    assert (kinetics[0], kinetics[-1]) == ("abseiling", "zumba")
    assert (imagenet[0], imagenet[-1]) == ("tench", "toilet tissue")
    synsets = imagenet_synsets()
    assert (synsets[0][0], synsets[-1][0]) == ("n01440764", "n15075141")


def test_each_set_is_in_sorted_class_folder_order_and_names_each_class_once():
    # The published heads number classes by sorted folder name: the SSv2 and Kinetics names are the folders,
    # the ImageNet folders are the WordNet ids.
    for name in ("ssv2", "kinetics700"):
        names = list(label_set(name))
        assert names == sorted(names), name
    wnids = [wnid for wnid, _ in imagenet_synsets()]
    assert wnids == sorted(wnids) and len(set(wnids)) == 1000
    for name in LABEL_SETS:
        assert len(set(label_set(name))) == len(label_set(name)), name


def test_imagenet_names_shared_by_two_synsets_carry_their_wordnet_id():
    names = label_set("imagenet1k")
    cranes = [name for name in names if name.startswith("crane")]
    assert len(cranes) == 2 and all(name.endswith(")") for name in cranes)
    assert {name.split(" (")[1][:-1] for name in cranes} <= {wnid for wnid, _ in imagenet_synsets()}


def test_every_published_classifier_head_has_its_names():
    heads = [entry for entry in MODELS.values() if entry.num_classes]
    assert len(heads) == 15
    for entry in heads:
        assert entry.class_names is not None and len(entry.class_names) == entry.num_classes, entry.name
        model = hvm1.load_model(entry.name, pretrained=False, device="meta")
        assert model.class_names == entry.class_names, entry.name
    for entry in MODELS.values():
        if not entry.num_classes:
            assert entry.class_names is None


def test_labels_from_a_text_file_a_class_folder_or_a_set_name(tmp_path):
    listing = tmp_path / "names.txt"
    listing.write_text("dog\n\ncat\nbird\n")
    assert read_labels(listing, 3) == ("dog", "cat", "bird")
    folder = tmp_path / "classes"
    for name in ("b", "a", "c", ".hidden"):
        (folder / name).mkdir(parents=True)
    assert read_labels(folder) == ("a", "b", "c")
    assert read_labels("ssv2", 174) == label_set("ssv2")


def test_a_wrong_count_names_both_counts(tmp_path):
    listing = tmp_path / "names.txt"
    listing.write_text("dog\ncat\n")
    with pytest.raises(LabelsError, match=r"names.txt has 2 class names but the model's head has 5 classes"):
        read_labels(listing, 5)
    with pytest.raises(LabelsError, match=r"has 174 class names but the model's head has 7"):
        read_labels("ssv2", 7)


def test_bad_label_sources_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_labels(tmp_path / "missing.txt")
    repeated = tmp_path / "repeated.txt"
    repeated.write_text("dog\ncat\ndog\n")
    with pytest.raises(LabelsError, match="repeated.txt names 1 classes more than once, e.g. 'dog'"):
        read_labels(repeated)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LabelsError, match="holds no class names"):
        read_labels(empty)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(LabelsError, match="binary.txt is not a UTF-8 text file"):
        read_labels(binary)


def published_format(path: Path, model: torch.nn.Module, args: dict) -> Path:
    torch.save({"model": model.state_dict(), "epoch": 0, "args": argparse.Namespace(**args)}, path)
    return path


def test_a_checkpoint_without_names_has_none_and_says_so(tmp_path):
    file = published_format(
        tmp_path / "own.pth", build_model(TINY.replace(num_classes=174)), TINY.to_dict() | {"num_classes": 174}
    )
    model = hvm1.load_model(file)
    assert model.class_names is None
    with pytest.raises(LabelsError, match="records no class names for its 174-class head.*labels 'ssv2'"):
        class_names_of(model)
    no_head = hvm1.load_model(
        published_format(
            tmp_path / "plain.pth", build_model(TINY.replace(num_classes=0)), TINY.to_dict() | {"num_classes": 0}
        )
    )
    with pytest.raises(LabelsError, match="no classification head"):
        class_names_of(no_head)


def test_names_recorded_by_finetuning_survive_convert_and_reach_info(tmp_path, capsys):
    names = ["pour", "stir", "cut", "peel", "wash"]
    source = published_format(
        tmp_path / "finetuned.pth", build_model(TINY), TINY.to_dict() | {CLASS_NAMES_METADATA_KEY: json.dumps(names)}
    )
    assert hvm1.load_model(source).class_names == tuple(names)
    converted = hvm1.zoo.convert(source, tmp_path / "finetuned.safetensors")
    from safetensors import safe_open

    with safe_open(converted, "pt") as handle:
        assert json.loads(handle.metadata()[CLASS_NAMES_METADATA_KEY]) == names
    assert class_names_of(hvm1.load_model(converted)) == tuple(names)

    assert main(["info", str(converted)]) == 0
    lines = dict(line.split("  ", 1) for line in capsys.readouterr().out.splitlines())
    assert lines["classes"].strip() == "5 (recorded in the file): pour, stir, cut, ... (--labels lists all)"
    assert main(["info", str(converted), "--labels"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{index}\t{name}" for index, name in enumerate(names)]


def test_a_head_of_another_count_keeps_no_names(tmp_path):
    model = build_model(TINY)
    model.class_names = ("a", "b", "c", "d", "e")
    file = save_safetensors(
        model, tmp_path / "m.safetensors", metadata={CLASS_NAMES_METADATA_KEY: json.dumps(["a", "b", "c", "d", "e"])}
    )
    report: list[str] = []
    fresh = hvm1.load_model(file, rules=("fresh-head",), num_classes=3, report=report)
    assert fresh.config.num_classes == 3 and fresh.class_names is None and report


def test_info_of_a_zoo_model_shows_its_classes(capsys):
    assert main(["info", "vit_hvm1_ssv2-50shot"]) == 0
    lines = dict(line.split("  ", 1) for line in capsys.readouterr().out.splitlines())
    ssv2 = label_set("ssv2")
    assert lines["classes"].strip() == f"174 (label set ssv2): {', '.join(ssv2[:3])}, ... (--labels lists all)"
    assert main(["info", "vit_kinetics_imagenet-2pt", "--labels"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1000 and out[0] == "0\ttench"
    assert main(["info", "vit_hvm1_none", "--labels"]) == 1
    assert "no classification head" in capsys.readouterr().err

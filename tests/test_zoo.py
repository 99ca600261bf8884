"""The model zoo's registry, names, architectures and preprocessing; `load_model` without downloads; the
`list`/`info` commands and `--set` parsing; the torch.hub entry points."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import hvm1
from hvm1 import hub, zoo
from hvm1.cli import main
from hvm1.settings import parse_overrides
from recorded_progress import RecordedProgress
from reference_data import MAE_CHECKPOINT, REFERENCE, VIT_CHECKPOINT, fixture

ROOT = Path(__file__).resolve().parents[1]
PRETRAININGS = ["hvm1", "hvm1@448", "kinetics"]
FINETUNINGS = ["none", "ssv2-50shot", "ssv2-10shot", "kinetics-50shot", "kinetics-10shot", "imagenet-2pt"]
CLASSES = {"none": 0, "ssv2": 174, "kinetics": 700, "imagenet": 1000}
# Parameter counts of the published architectures, as the published release states them.
PUBLISHED_PARAMETERS = {"mae_hvm1_none": 645_534_104, "mae_hvm1@448_none": 646_910_360, "vit_hvm1_none": 631_527_680}


def test_the_21_names_in_the_published_order():
    expected = [name for y in PRETRAININGS for name in [f"mae_{y}_none", *(f"vit_{y}_{z}" for z in FINETUNINGS)]]
    assert hvm1.get_available_models() == expected
    assert len(expected) == 21


@pytest.mark.parametrize("name", zoo.get_available_models())
def test_each_entry_names_its_file_architecture_and_preprocessing(name):
    entry = zoo.get_model_entry(name)
    model_type, pretraining, finetuning = name.split("_", 2)
    assert (entry.model_type, entry.pretraining, entry.finetuning) == (model_type, pretraining, finetuning)
    assert (entry.repo_id, entry.filename) == ("eminorhan/hvm-1", f"{pretraining}_{finetuning}.pth")
    assert isinstance(entry.config, hvm1.MAEConfig) == (model_type == "mae")
    assert entry.img_size == (448 if pretraining == "hvm1@448" else 224)
    assert entry.num_frames == 16
    assert entry.num_classes == CLASSES[finetuning.split("-")[0]]
    pre = zoo.preprocessing_for(name)
    assert (pre.img_size, pre.num_frames) == (entry.img_size, 16)
    published = {224: ((256, 320), 0.9, 1.2e-3), 448: (448, 0.95, 6e-4)}[entry.img_size]
    assert (pre.train_short_side, pre.mask_ratio, pre.blr) == published
    short_sides = (pre.visualisation().short_side, pre.evaluation().short_side, pre.image_evaluation().resize_to)
    assert short_sides == {224: (256, 256, 256), 448: (480, 512, 480)}[entry.img_size]
    assert (pre.visualisation().sampling_rate, pre.evaluation().sampling_rate) == (4, 8)
    if finetuning == "imagenet-2pt":
        assert (pre.mean, pre.std, pre.single_image) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True)
    else:
        assert (pre.mean, pre.std, pre.single_image) == ((0.45,) * 3, (0.225,) * 3, False)
    assert (entry.top1 is None) == (finetuning == "none")


@pytest.mark.parametrize("name", zoo.get_available_models())
def test_each_architecture_has_the_published_state_dict_shapes(name):
    shapes_file = fixture(REFERENCE / "vith14_state_dict_shapes.json")
    entry = zoo.get_model_entry(name)
    key = f"mae@{entry.img_size}" if entry.model_type == "mae" else f"vit@{entry.img_size}/{entry.num_classes}"
    model = hvm1.load_model(name, pretrained=False, device="meta")
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == json.loads(shapes_file.read_text())[key]
    if name in PUBLISHED_PARAMETERS:
        assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMETERS[name]


def test_pretrained_false_builds_on_meta_or_randomly_initialised_with_overrides():
    empty = hvm1.load_model("vit_hvm1@448_none", pretrained=False, device="meta", dtype="bfloat16")
    assert all(p.is_meta and p.dtype == torch.bfloat16 for p in empty.parameters())
    small = hvm1.load_model("vit_hvm1_ssv2-50shot", pretrained=False, depth=1, drop_path_rate=0.1)
    assert small.training is False and len(small.blocks) == 1 and small.head.weight.shape == (174, 1280)
    assert small.config.drop_path_rate == 0.1


def test_model_type_vit_from_an_mae_entry_and_errors():
    encoder = hvm1.load_model("mae_hvm1_none", model_type="vit", pretrained=False, device="meta")
    assert isinstance(encoder, hvm1.VideoViT) and encoder.config.num_classes == 0
    with pytest.raises(ValueError, match="'mae_hvm1_none'"):
        hvm1.load_model("vit_hvm1_none", model_type="mae", pretrained=False, device="meta")
    with pytest.raises(ValueError, match="cannot be loaded as model_type='mae'$"):
        hvm1.load_model("vit_hvm1_ssv2-10shot", model_type="mae", pretrained=False, device="meta")
    with pytest.raises(ValueError, match="unknown config field.*num_head\\b"):
        hvm1.load_model("vit_hvm1_none", pretrained=False, device="meta", num_head=4)
    with pytest.raises(ValueError, match="pretrained=False"):  # before any download
        hvm1.load_model("vit_hvm1_none", device="meta")


@pytest.mark.parametrize(
    "typo, first",
    [
        ("vit_hvm1@448_ssv2_50shot", "vit_hvm1@448_ssv2-50shot"),
        ("vit_hvm1_448_none", "vit_hvm1@448_none"),
        ("mae_kinetic_none", "mae_kinetics_none"),
    ],
)
def test_unknown_name_suggests_the_closest_names(typo, first):
    with pytest.raises(zoo.UnknownModelError) as info:
        hvm1.load_model(typo)
    assert isinstance(info.value, ValueError)
    assert f"did you mean '{first}'" in str(info.value)


def test_unknown_name_with_nothing_close_lists_all_and_missing_paths_are_file_errors(tmp_path):
    with pytest.raises(zoo.UnknownModelError, match="valid names: mae_hvm1_none, vit_hvm1_none"):
        hvm1.load_model("resnet50")
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        hvm1.load_model(tmp_path / "hvm1_none.pth")
    with pytest.raises(FileNotFoundError):
        hvm1.load_model("hvm1_none.pth")


def test_preprocessing_of_a_model_or_config_is_the_video_default():
    model = hvm1.load_model("vit_hvm1@448_imagenet-2pt", pretrained=False, device="meta")
    pre = zoo.preprocessing_for(model)
    assert (pre.img_size, pre.num_frames, pre.mean, pre.std) == (448, 16, zoo.VIDEO_MEAN, zoo.VIDEO_STD)
    assert zoo.preprocessing_for(model.config) == pre
    assert zoo.preprocessing_for(zoo.get_model_entry("vit_hvm1@448_imagenet-2pt")).mean == zoo.IMAGENET_MEAN
    with pytest.raises(TypeError):
        zoo.preprocessing_for(3)


def test_parse_set_types_values():
    assert parse_overrides(["num_heads=4", "mlp_ratio=4.0", "layer_norm_eps=1e-6", "qkv_bias=False", "x = y"]) == {
        "num_heads": 4,
        "mlp_ratio": 4.0,
        "layer_norm_eps": 1e-6,
        "qkv_bias": False,
        "x": "y",
    }
    assert parse_overrides([]) == {}
    for bad in ("num_heads", "=4"):
        with pytest.raises(ValueError, match="FIELD=VALUE"):
            parse_overrides([bad])


def test_list_shows_every_model_and_whether_it_is_cached(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "cached_path", lambda name: Path("/cache") if name == "vit_kinetics_none" else None)
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["name", "type", "pretraining", "finetuning", "size", "classes", "cached"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == zoo.get_available_models()
    assert rows["vit_hvm1@448_kinetics-10shot"] == ["vit", "hvm1@448", "kinetics-10shot", "448px", "700", "no"]
    assert rows["vit_kinetics_none"][-1] == "yes"


def test_info_describes_one_model_and_rejects_unknown_names(capsys):
    assert main(["info", "vit_hvm1@448_imagenet-2pt"]) == 0
    out = capsys.readouterr().out
    for part in (
        "hvm1@448_imagenet-2pt.pth",
        "eminorhan/hvm-1",
        "1000-class head",
        "one image repeated",
        "(0.485, 0.456, 0.406)",
        "52.3%",
        "img_size=448",
        "633,791,720",
    ):
        assert part in out
    assert main(["info", "vit_hvm1@448_ssv2_50shot"]) == 1
    assert "did you mean 'vit_hvm1@448_ssv2-50shot'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["vit_hvm1@448_ssv2-50shot", "vit_hvm1_imagenet-2pt", "mae_hvm1@448_none"])
def test_info_prints_the_presets_the_commands_use(capsys, name):
    """Each command's line is the description of the very preset that command builds."""
    from hvm1.eval.embed import embedding_preset
    from hvm1.viz.runs import picture_preset

    assert main(["info", name]) == 0
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines())
    pre = zoo.preprocessing_for(name)
    model = hvm1.load_model(name, pretrained=False, device="meta", model_type="vit" if "mae" in name else None)
    assert picture_preset(model, pre).describe() in (lines.get("attention"), lines.get("complete, attention"))
    if name.startswith("mae"):
        assert "short side 448" in lines["pretrain"] and lines["pretrain"].endswith("mask ratio 0.95")
        return
    assert lines["embed"] == embedding_preset(pre).describe()
    if pre.single_image:
        assert lines["evaluate"] == pre.image_evaluation().describe()
    else:
        assert "short side 512" in lines["evaluate"] and "short side 480" in lines["attention"]


@pytest.mark.slow
def test_hubconf_has_one_entry_point_per_name():
    module = _import_hubconf()
    identifiers = {name: name.replace("@", "_").replace("-", "_") for name in zoo.get_available_models()}
    # torch.hub lists a hubconf's public callables as its entry points
    public = {name for name in dir(module) if callable(getattr(module, name)) and not name.startswith("_")}
    assert public == {*identifiers.values(), "load_model", "get_available_models"}
    for name, identifier in identifiers.items():
        model = getattr(module, identifier)(pretrained=False, device="meta")
        assert model.config == zoo.get_model_entry(name).config
    via_hub = torch.hub.load(
        str(ROOT), "load_model", "vit_hvm1@448_none", source="local", pretrained=False, device="meta", trust_repo=True
    )
    assert via_hub.config.img_size == 448


def _import_hubconf():
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_training_checkpoint_records_its_preprocessing_and_other_sizes_get_their_own_settings(tmp_path):
    import argparse

    tiny = hvm1.load_model(fixture(VIT_CHECKPOINT), num_heads=4)
    recorded = zoo.preprocessing_for(tiny).for_images()
    args = argparse.Namespace(
        **tiny.config.to_dict(), **{zoo.PREPROCESSING_METADATA_KEY: zoo.preprocessing_to_json(recorded)}
    )
    torch.save({"model": tiny.state_dict(), "args": args}, tmp_path / "checkpoint-last.pth")
    again = zoo.preprocessing_for(tmp_path / "checkpoint-last.pth")
    assert again == recorded and (again.mean, again.single_image) == (zoo.IMAGENET_MEAN, True)
    entry = zoo.preprocessing_for("vit_hvm1_none")
    assert entry.at_size(448, 16) == zoo.Preprocessing(img_size=448, num_frames=16)
    assert (entry.at_size(448, 16).train_short_side, entry.at_size(448, 16).blr) == (448, 6e-4)
    assert entry.at_size(224, 8).train_short_side == (256, 320)


def test_load_for_inputs_fails_before_any_download_and_names_what_it_loaded(monkeypatch, tmp_path):
    fetched: list = []
    monkeypatch.setattr(hub, "fetch_weights", lambda *args, **kwargs: fetched.append(args))
    told = RecordedProgress()
    with pytest.raises(ValueError, match="takes 224 px frames, not the 448 px asked for"):
        zoo.load_for_inputs("mae_hvm1_none", img_size=448, progress=told)
    with pytest.raises(ValueError, match="cannot be loaded as model_type='mae'"):
        zoo.load_for_inputs("vit_hvm1_ssv2-50shot", model_type="mae", progress=told)
    with pytest.raises(ValueError, match=r"unknown config field\(s\) num_hedas"):
        zoo.load_for_inputs("mae_hvm1_none", num_hedas=4, progress=told)
    assert fetched == [] and told.calls == []
    path = tmp_path / "tiny_vit.pth"
    path.write_bytes(fixture(VIT_CHECKPOINT).read_bytes())
    loaded = zoo.load_for_inputs(path, num_heads=4, progress=told)
    assert (loaded.source, loaded.stem, told.calls) == (str(path.resolve()), "tiny_vit", [])
    assert loaded.preprocessing == zoo.preprocessing_for(path, loaded.model)


def test_load_for_inputs_unpickles_a_file_once_for_its_weights_and_preprocessing(monkeypatch, tmp_path):
    path = tmp_path / "tiny_mae.pth"
    path.write_bytes(fixture(MAE_CHECKPOINT).read_bytes())
    expected_model = zoo.load_model(path, num_heads=4, decoder_num_heads=4)
    expected_pre = zoo.preprocessing_for(path, expected_model)
    reads: list[Path] = []
    unpickle = torch.load
    monkeypatch.setattr(
        torch, "load", lambda file, *args, **kwargs: reads.append(file) or unpickle(file, *args, **kwargs)
    )
    loaded = zoo.load_for_inputs(path, num_heads=4, decoder_num_heads=4)
    assert reads == [path]
    assert loaded.preprocessing == expected_pre and loaded.model.config == expected_model.config
    for (key, value), expected in zip(loaded.model.state_dict().items(), expected_model.state_dict().values()):
        assert torch.equal(value, expected), key

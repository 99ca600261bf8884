"""Loading zoo models by name through the real `huggingface_hub` download path, against a local fake hub.

The tiny reference checkpoints stand in for the published files (`hvm1_none.pth` is the tiny MAE), with the
zoo entries' architecture swapped for the tiny one by a test-only override. They are in the published format
(model, AdamW state, epoch, scaler, args), so a first load fetches the weights alone, in range requests.
"""

from __future__ import annotations

import io
import json
import re
import struct
import time
import zipfile
from pathlib import Path

import pytest
import torch

from hub_server import FakeHub, point_hub_client_at, set_offline, use_tiny_architectures
from hvm1 import CheckpointError, load_model, zoo
from hvm1 import hub as hub_module
from hvm1.cli import main
from hvm1.hub import DownloadError, is_weights_only
from hvm1.models import MAEConfig
from hvm1.models.configs import config_fields
from recorded_progress import RecordedProgress
from reference_data import reference_dir, reference_heads

REPO = zoo.HUB_REPO
TINY_NAMES = ["mae_hvm1_none", "vit_hvm1_none", "vit_hvm1_ssv2-50shot", "vit_hvm1_imagenet-2pt"]


@pytest.fixture
def tiny() -> Path:
    return reference_dir("tiny")


@pytest.fixture
def hub(monkeypatch, tmp_path, tiny):
    config = json.loads((tiny / "config.json").read_text())
    use_tiny_architectures(
        monkeypatch, MAEConfig(**{k: v for k, v in config.items() if k in config_fields("mae")}), TINY_NAMES
    )
    server = FakeHub()
    point_hub_client_at(monkeypatch, server.url, tmp_path / "hf")
    yield server
    server.stop()


def serve(hub: FakeHub, filename: str, source: Path) -> None:
    hub.files[(REPO, filename)] = source.read_bytes()


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def blobs(hf_home: Path) -> list[Path]:
    return [p for p in hf_home.rglob("blobs/*") if p.is_file()]


def gets(hub: FakeHub) -> int:
    """How many GETs of a file the server has answered (a weights-only fetch makes several)."""
    return hub.downloads()


def data_offset(data: bytes, name: str) -> int:
    """Where the bytes of the archive entry `name` start in the zip file `data` (after its local header)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    return info.header_offset + 30 + name_length + extra_length


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 64 KiB, so the tiny file's weights take many range requests, as a published file's do."""
    monkeypatch.setattr(hub_module, "PIECE_BYTES", 64 << 10)


def test_first_download_then_cached_reload_with_the_server_stopped(hub, tiny, tmp_path):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    expected = load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny))

    assert zoo.cached_path("mae_hvm1_none") is None
    model = load_model("mae_hvm1_none")
    assert_same_weights(model, expected)
    transfers = gets(hub)
    assert zoo.cached_path("mae_hvm1_none") == zoo.cached_path("vit_hvm1_none") is not None  # one file, two names
    assert is_weights_only(zoo.cached_path("mae_hvm1_none"))

    encoder = load_model("vit_hvm1_none")  # same file: no second transfer, nor any other request
    assert gets(hub) == transfers and len(hub.file_requests()) == transfers + 1
    assert "decoder_embed.weight" not in encoder.state_dict()

    hub.stop()
    assert_same_weights(load_model("mae_hvm1_none"), expected)


def test_a_command_load_says_what_its_first_use_fetches_and_nothing_once_cached(hub, tiny):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    first, again = RecordedProgress(), RecordedProgress()
    zoo.load_for_inputs("mae_hvm1_none", progress=first)
    zoo.load_for_inputs("vit_hvm1_none", progress=again)  # the same file, cached now
    ((kind, sentence),) = first.calls
    assert kind == "note" and f"from {REPO} once" in sentence and sentence.endswith("into the Hugging Face cache")
    assert again.calls == []


def test_offline_mode_uses_the_cache_without_any_request(hub, tiny, monkeypatch):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    load_model("mae_hvm1_none")
    seen = len(hub.file_requests())
    set_offline(monkeypatch, True)
    load_model("mae_hvm1_none")
    assert len(hub.file_requests()) == seen


def test_offline_with_nothing_cached_says_what_to_download_and_how_to_load_a_file(hub, tiny, monkeypatch):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    set_offline(monkeypatch, True)
    with pytest.raises(DownloadError) as info:
        load_model("vit_hvm1_none")
    message = str(info.value)
    for part in (
        "'vit_hvm1_none'",
        "hvm1_none.pth",
        REPO,
        "HF_HUB_OFFLINE",
        "hvm1.load_model('/path/to/hvm1_none.pth', model_type='vit')",
    ):
        assert part in message
    assert hub.file_requests() == []


def test_network_down_with_nothing_cached_is_a_clear_error(hub, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # the client retries with backoff before giving up
    hub.stop()
    with pytest.raises(DownloadError, match=r"hvm1_none\.pth \(model 'mae_hvm1_none'\).*could not be reached"):
        load_model("mae_hvm1_none")


def test_missing_file_on_the_hub_names_model_and_file(hub):
    with pytest.raises(DownloadError, match=r"hvm1_ssv2-50shot\.pth \(model 'vit_hvm1_ssv2-50shot'\).*not found"):
        load_model("vit_hvm1_ssv2-50shot")


@pytest.mark.parametrize("full_download", [False, True])
@pytest.mark.parametrize("fault", ["truncate", "corrupt"])
def test_a_bad_download_is_an_error_and_leaves_nothing_a_retry_would_trust(
    hub, tiny, tmp_path, fault, full_download, monkeypatch
):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    hub.fault = fault
    with pytest.raises(DownloadError, match=r"hvm1_none\.pth \(model 'mae_hvm1_none'\)"):
        load_model("mae_hvm1_none", full_download=full_download)
    assert zoo.cached_path("mae_hvm1_none") is None
    assert blobs(tmp_path / "hf") == []

    hub.fault = None
    expected = load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny))
    assert_same_weights(load_model("mae_hvm1_none", full_download=full_download), expected)
    assert is_weights_only(zoo.cached_path("mae_hvm1_none")) != full_download


def test_a_file_that_does_not_fit_the_entry_is_an_error(hub, tiny):
    serve(hub, "hvm1_ssv2-50shot.pth", tiny / "mae_checkpoint.pth")  # no head, but the entry has one
    with pytest.raises(CheckpointError, match=r"'vit_hvm1_ssv2-50shot'.*missing keys: head\.bias, head\.weight"):
        load_model("vit_hvm1_ssv2-50shot")


def test_a_finetuned_file_loads_with_its_head(hub, tiny):
    serve(hub, "hvm1_ssv2-50shot.pth", tiny / "vit_checkpoint.pth")
    model = load_model("vit_hvm1_ssv2-50shot")
    assert model.head.weight.shape == (7, 64)


def test_revision_and_cache_dir_are_passed_to_the_hub(hub, tiny, tmp_path):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    cache = tmp_path / "elsewhere"
    load_model("mae_hvm1_none", revision="v1.0", cache_dir=cache)
    assert ("GET", f"/{REPO}/resolve/v1.0/hvm1_none.pth") in hub.file_requests()
    assert zoo.cached_path("mae_hvm1_none", revision="v1.0", cache_dir=cache) is not None
    assert zoo.cached_path("mae_hvm1_none") is None


def test_pretrained_false_downloads_nothing(hub):
    model = load_model("vit_hvm1_none", pretrained=False, device="meta")
    assert next(model.parameters()).is_meta
    assert hub.file_requests() == []


def test_convert_by_name_downloads_once_and_list_shows_the_cached_file(hub, tiny, tmp_path, capsys):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    out = tmp_path / "encoder.safetensors"
    assert main(["convert", "vit_hvm1_none", "-o", str(out)]) == 0
    transfers = gets(hub)
    assert_same_weights(load_model(out), load_model("vit_hvm1_none"))
    assert gets(hub) == transfers
    capsys.readouterr()
    assert main(["list"]) == 0
    cached = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert (cached["mae_hvm1_none"], cached["vit_hvm1_none"], cached["vit_hvm1_ssv2-50shot"]) == ("yes", "yes", "no")


def test_a_file_converted_from_a_zoo_model_keeps_its_preprocessing(hub, tiny, tmp_path):
    serve(hub, "hvm1_imagenet-2pt.pth", tiny / "vit_checkpoint.pth")
    full, half = tmp_path / "imagenet.safetensors", tmp_path / "imagenet_bf16.safetensors"
    assert main(["convert", "vit_hvm1_imagenet-2pt", "-o", str(full)]) == 0
    assert main(["convert", str(full), "-o", str(half), "--dtype", "bfloat16"]) == 0
    for path in (full, half):
        assert zoo.preprocessing_for(path) == zoo.preprocessing_for("vit_hvm1_imagenet-2pt")
        assert zoo.preprocessing_for(path).mean == zoo.IMAGENET_MEAN


def test_the_download_shows_the_hub_clients_progress_bar(hub, tiny, monkeypatch, capsys):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    monkeypatch.setenv("TQDM_POSITION", "-1")  # the client shows bars on terminals only; this forces them on
    load_model("mae_hvm1_none")
    err = capsys.readouterr().err
    assert "hvm1_none.pth" in err and "100%" in err


def test_a_first_load_fetches_only_the_weights_which_equal_a_whole_file_download(hub, tiny, tmp_path, small_pieces):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    size = len(hub.files[(REPO, "hvm1_none.pth")])
    slim = load_model("mae_hvm1_none")
    fetched = hub.bytes_sent()
    assert zoo.weights_nbytes("mae_hvm1_none") < fetched <= 0.36 * size
    assert all(record.range is not None for record in hub.sent)  # range requests only
    assert len(hub.sent) > 4  # the weights came in several pieces

    weights_only = zoo.cached_path("mae_hvm1_none")
    whole = load_model("mae_hvm1_none", full_download=True)
    assert hub.bytes_sent() - fetched == size
    assert not is_weights_only(zoo.cached_path("mae_hvm1_none"))
    assert not weights_only.exists()  # the whole file replaces the weights-only copy
    assert_same_weights(slim, whole)
    assert_same_weights(slim, load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny)))


def test_a_flipped_byte_in_a_weight_is_named_never_loaded_and_fetched_again_on_retry(
    hub, tiny, monkeypatch, small_pieces
):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    entry = "mae_checkpoint/data/3"
    hub.fault, hub.flip_at = "flip", data_offset(hub.files[(REPO, "hvm1_none.pth")], entry) + 5
    with pytest.raises(DownloadError) as info:
        load_model("mae_hvm1_none")
    for part in ("'mae_hvm1_none'", "hvm1_none.pth", f"'{entry}'", "CRC-32"):
        assert part in str(info.value)
    assert zoo.cached_path("mae_hvm1_none") is None
    set_offline(monkeypatch, True)
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):  # the damaged fetch is never loaded
        load_model("mae_hvm1_none")

    set_offline(monkeypatch, False)
    hub.fault = None
    first = hub.bytes_sent()
    model = load_model("mae_hvm1_none")
    assert_same_weights(model, load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny)))
    archive = zipfile.ZipFile(tiny / "mae_checkpoint.pth")
    directory = (tiny / "mae_checkpoint.pth").stat().st_size - archive.start_dir
    again = hub.bytes_sent() - first  # the damaged entry's piece, and the central directory (no check of its own)
    assert again <= hub_module.PIECE_BYTES + max(directory, hub_module.TAIL_BYTES)


def test_a_server_that_ignores_range_gets_the_whole_file(hub, tiny, tmp_path):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    hub.fault = "ignore-range"
    model = load_model("mae_hvm1_none")
    assert_same_weights(model, load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny)))
    cached = zoo.cached_path("mae_hvm1_none")
    assert cached is not None and not is_weights_only(cached) and len(blobs(tmp_path / "hf")) == 1
    assert [p for p in (tmp_path / "hf").rglob("*.incomplete*")] == []


def test_an_interrupted_fetch_resumes_without_fetching_finished_ranges_again(hub, tiny, monkeypatch, small_pieces):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    size = len(hub.files[(REPO, "hvm1_none.pth")])
    hub.fault, hub.cut_after = "cut", int(0.36 * size) // 2
    with pytest.raises(DownloadError, match=r"'mae_hvm1_none'.*could not be fetched.*trying again fetches the rest"):
        load_model("mae_hvm1_none")
    assert zoo.cached_path("mae_hvm1_none") is None
    finished = [record.range for record in hub.sent if record.complete]
    assert finished and not all(record.complete for record in hub.sent)

    hub.fault, first = None, len(hub.sent)
    model = load_model("mae_hvm1_none")
    assert_same_weights(model, load_model(tiny / "mae_checkpoint.pth", **reference_heads(tiny)))
    again = [record.range for record in hub.sent[first:]]
    assert again and not any(overlaps(a, b) for a in again for b in finished)
    assert hub.bytes_sent() <= 0.36 * size + hub.cut_after  # a cut piece's part is fetched again, no more


def test_full_download_fetches_the_whole_file_verified_by_its_sha256(hub, tiny, tmp_path):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    size = len(hub.files[(REPO, "hvm1_none.pth")])
    load_model("mae_hvm1_none", full_download=True)
    assert [(record.range, record.nbytes) for record in hub.sent] == [(None, size)]
    (blob,) = blobs(tmp_path / "hf")
    assert blob.name == hub.etag(hub.files[(REPO, "hvm1_none.pth")])  # the hub's SHA-256, checked on arrival
    assert zoo.cached_path("mae_hvm1_none").resolve() == blob.resolve()


def test_info_says_what_a_first_use_downloads_and_whether_it_is_cached(hub, tiny, capsys):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")

    def info(name: str) -> dict[str, str]:
        assert main(["info", name]) == 0
        return dict(re.split(r"\s{2,}", line, maxsplit=1) for line in capsys.readouterr().out.splitlines())

    before = info("vit_hvm1_none")
    assert before["cached"] == "no"
    assert before["first use"].startswith(f"downloads {zoo.weights_nbytes('vit_hvm1_none') / 1e9:.2f} GB")
    assert info("vit_hvm1@448_none")["first use"].startswith("downloads 2.59 GB")  # ViT-H's MAE in float32
    load_model("vit_hvm1_none")
    after = info("vit_hvm1_none")
    assert after["cached"].endswith("(weights only)") and after["first use"] == "downloads nothing (cached)"


def test_convert_with_full_download_fetches_the_whole_file(hub, tiny, tmp_path):
    serve(hub, "hvm1_none.pth", tiny / "mae_checkpoint.pth")
    out = tmp_path / "encoder.safetensors"
    assert main(["convert", "vit_hvm1_none", "-o", str(out), "--full-download"]) == 0
    assert [record.range for record in hub.sent] == [None]
    assert not is_weights_only(zoo.cached_path("vit_hvm1_none"))

"""Class names of classifier heads: the published label sets, and one's own from a file or a class folder.

The published finetuning numbered each task's classes by sorted class-folder name; the files beside this
module give the names in that order (line k = output k; see README.md there for where they come from):

- `ssv2`: the 174 Something-Something-v2 templates (`*_ssv2-10shot`, `*_ssv2-50shot`);
- `kinetics700`: the 700 Kinetics-700 classes (`*_kinetics-10shot`, `*_kinetics-50shot`);
- `imagenet1k`: the 1000 ImageNet synsets in sorted WordNet-id order (`*_imagenet-2pt`); a name is the
  synset's first lemma ("tench"), with its WordNet id added where two synsets share it ("crane (n02012849)").

A loaded `VideoViT` carries its names as `model.class_names` (a tuple, or None when its checkpoint records
none); `class_names_of(model)` returns them or says that there are none and how to give them.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from importlib import resources
from pathlib import Path

#: The published label sets by name, and the file beside this module that holds each.
LABEL_SETS = {"ssv2": "ssv2.txt", "kinetics700": "kinetics700.txt", "imagenet1k": "imagenet1k.tsv"}
#: The key under which a converted `.safetensors` file's metadata, or a training checkpoint's args, records
#: the class names of its head (a JSON list).
CLASS_NAMES_METADATA_KEY = "hvm1_class_names"


class LabelsError(ValueError):
    """Class names that cannot be used: a wrong count for the head, an unreadable file, or none at all."""


def _read_resource(filename: str) -> list[str]:
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


@functools.cache
def imagenet_synsets() -> tuple[tuple[str, str], ...]:
    """The 1000 ImageNet classes in head order as (WordNet id, lemmas) pairs: ('n01440764', 'tench, Tinca tinca')."""
    synsets = []
    for line in _read_resource(LABEL_SETS["imagenet1k"]):
        _, wnid, lemmas = line.split("\t")
        synsets.append((wnid, lemmas))
    return tuple(synsets)


@functools.cache
def label_set(name: str) -> tuple[str, ...]:
    """The class names of published label set `name` ('ssv2', 'kinetics700' or 'imagenet1k'), in head order.

    Raises:
        LabelsError: `name` is no published label set (the message lists them).
    """
    if name not in LABEL_SETS:
        raise LabelsError(f"unknown label set {name!r}; the published ones are {', '.join(LABEL_SETS)}")
    if name != "imagenet1k":
        return tuple(_read_resource(LABEL_SETS[name]))
    synsets = imagenet_synsets()
    first = [lemmas.split(",")[0].strip() for _, lemmas in synsets]
    shared = {lemma for lemma, count in Counter(first).items() if count > 1}
    return tuple(f"{lemma} ({wnid})" if lemma in shared else lemma for lemma, (wnid, _) in zip(first, synsets))


def class_folder_names(root: str | os.PathLike) -> list[str]:
    """The class names a folder of class subfolders gives: its subfolders' names in sorted order, the order
    in which the published finetuning (and `hvm1 evaluate`, `hvm1 finetune`) number them.

    Raises:
        FileNotFoundError: `root` is not a folder.

    Args:
        root: the folder.

    Returns:
        Its subfolders' names, sorted.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    return sorted(entry.name for entry in root.iterdir() if entry.is_dir() and not entry.name.startswith("."))


def read_labels(source: str | os.PathLike, num_classes: int | None = None) -> tuple[str, ...]:
    """Class names from `source`: a published label set's name (see `LABEL_SETS`), a text file of one name
    per line (blank lines ignored), or a folder of class subfolders (sorted names, see `class_folder_names`).

    Args:
        source: the label set name, file or folder.
        num_classes: the head's class count, when the names are for a head: another count is an error.

    Returns:
        The names in head order.

    Raises:
        LabelsError: the names are not `num_classes` (both counts named), repeat a name, or there are none.
        FileNotFoundError: `source` is neither a label set name nor an existing file or folder.
    """
    path = Path(source)
    if str(source) in LABEL_SETS and not path.exists():
        names: tuple[str, ...] = label_set(str(source))
        what = f"label set {source!r}"
    elif path.is_dir():
        names = tuple(class_folder_names(path))
        what = f"the class folders of {path}"
    elif path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as error:
            raise LabelsError(f"{path} is not a UTF-8 text file of class names ({error.reason})") from None
        names = tuple(line.strip() for line in lines if line.strip())
        what = f"{path}"
    else:
        raise FileNotFoundError(
            f"labels {str(source)!r}: no such file or folder, nor a published label set ({', '.join(LABEL_SETS)})"
        )
    if not names:
        raise LabelsError(f"{what} holds no class names")
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        raise LabelsError(f"{what} names {len(repeated)} classes more than once, e.g. {repeated[0]!r}")
    if num_classes is not None and len(names) != num_classes:
        raise LabelsError(f"{what} has {len(names)} class names but the model's head has {num_classes} classes")
    return names


def class_names_to_json(names: tuple[str, ...] | list[str]) -> str:
    """`names` as the JSON text a file records under `CLASS_NAMES_METADATA_KEY`.

    Args:
        names: the class names, in head order.

    Returns:
        The JSON text.
    """
    return json.dumps(list(names), ensure_ascii=False)


def class_names_from_json(text: str) -> tuple[str, ...]:
    """The names a file recorded with `class_names_to_json`.

    Raises:
        LabelsError: `text` is not a JSON list of strings.

    Args:
        text: the JSON text.

    Returns:
        The names.
    """
    try:
        names = json.loads(text)
    except json.JSONDecodeError as error:
        raise LabelsError(f"recorded class names are not JSON ({error.msg})") from None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise LabelsError("recorded class names are not a JSON list of strings")
    return tuple(names)


def class_names_of(model: object) -> tuple[str, ...]:
    """The class names of a loaded classifier (`model.class_names`), or an error that says there are none.

    Raises:
        LabelsError: the model has no head, or its checkpoint records no names (the message says how to give
            them: a label set name, a text file or a class folder).

    Args:
        model: a loaded model.

    Returns:
        Its class names, in head order.
    """
    config = getattr(model, "config", None)
    num_classes = getattr(config, "num_classes", 0)
    if not num_classes:
        raise LabelsError("the model has no classification head (num_classes 0), so no class names")
    names = getattr(model, "class_names", None)
    if names is None:
        published = [name for name in LABEL_SETS if len(label_set(name)) == num_classes]
        hint = f" (the published {published[0]} head has {num_classes}: labels {published[0]!r})" if published else ""
        raise LabelsError(
            f"the model's checkpoint records no class names for its {num_classes}-class head: give them as a text "
            f"file (one per line), a folder of class subfolders or a published label set{hint}"
        )
    return tuple(names)

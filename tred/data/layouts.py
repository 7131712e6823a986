"""Readers of each paper-scale dataset in its native on-disk layout.

Each reader takes the dataset root (and the dataset config) and returns a `Layout`: the train
and test lists of (absolute image path, 0-based label) and the class names. A reader checks
the index files it needs and raises `DataError` naming the missing files, the expected layout
and the path it looked in. Train/test follow the splits the L2-SP / DELTA lab used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tred.data.splits import stratified_split
from tred.errors import DataError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")

# The layout each reader expects under dataset.root (also shown in error messages and the docs).
EXPECTED = {
    "cub200": "CUB_200_2011/{images.txt, train_test_split.txt, image_class_labels.txt, classes.txt, "
              "images/<class>/<file>.jpg} (the folder CUB_200_2011/ itself may be the root)",
    "stanford_dogs": "{Images/<wnid-breed>/<file>.jpg, train_list.mat, test_list.mat} "
                     "(images.tar + lists.tar extracted)",
    "stanford_cars": "{cars_train/<file>.jpg, cars_test/<file>.jpg, devkit/cars_meta.mat, "
                     "devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat}",
    "fgvc_aircraft": "fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, "
                     "images_variant_trainval.txt, images_variant_test.txt}",
    "flowers102": "{jpg/image_<05d>.jpg, imagelabels.mat, setid.mat}",
    "mit_indoor67": "{Images/<class>/<file>.jpg, TrainImages.txt, TestImages.txt}",
    "caltech256": "256_ObjectCategories/<NNN.class>/<file>.jpg (257 folders)",
    "image_folder": "<class>/<image> (split seeded per dataset.train_per_class / test_fraction) "
                    "or {train,test}/<class>/<image> (given split)",
}


@dataclass
class Layout:
    train: list  # [(path, label)]
    test: list
    classes: list


def missing_error(name: str, root: Path, missing) -> DataError:
    shown = ", ".join(str(m) for m in list(missing)[:5])
    more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
    return DataError(
        f"dataset {name} is missing or incomplete in {root}: not found: {shown}{more}. "
        f"Expected layout under dataset.root: {EXPECTED[name]}. Set dataset.root (or $TRED_DATA), "
        "or dataset.download=true where the dataset can be downloaded (see docs/paper_scale.md)")


def _require(name: str, root: Path, *rel: str) -> None:
    missing = [r for r in rel if not (root / r).exists()]
    if missing:
        raise missing_error(name, root, missing)


def _base(root: Path, marker: str, sub: str) -> Path:
    """`root`, or `root/sub` when the archive was extracted with its top folder."""
    return root if (root / marker).exists() or not (root / sub / marker).exists() else root / sub


def _lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat  # scipy comes with scikit-learn

    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as exc:
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); fetch it again") from None


def _listdir_images(folder: Path) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))


def cub200(root: Path, cfg) -> Layout:
    base = _base(root, "images.txt", "CUB_200_2011")
    _require("cub200", base, "images.txt", "train_test_split.txt", "image_class_labels.txt", "classes.txt", "images")
    paths = {i: p for i, p in _lines(base / "images.txt")}
    is_train = {i: f == "1" for i, f in _lines(base / "train_test_split.txt")}
    label = {i: int(c) - 1 for i, c in _lines(base / "image_class_labels.txt")}
    classes = [" ".join(p[1:]) for p in _lines(base / "classes.txt")]
    train, test = [], []
    for i, p in paths.items():
        (train if is_train[i] else test).append((str(base / "images" / p), label[i]))
    return Layout(train, test, classes)


def stanford_dogs(root: Path, cfg) -> Layout:
    _require("stanford_dogs", root, "Images", "train_list.mat", "test_list.mat")

    def read(split):
        m = _loadmat(root / f"{split}_list.mat")
        files = np.atleast_1d(m["file_list"])
        labels = np.atleast_1d(m["labels"]).astype(int) - 1
        return [(str(root / "Images" / str(f)), int(y)) for f, y in zip(files, labels)]

    train, test = read("train"), read("test")
    names = {y: Path(p).parent.name.split("-", 1)[-1] for p, y in train + test}
    return Layout(train, test, [names[y] for y in sorted(names)])


def stanford_cars(root: Path, cfg) -> Layout:
    test_annos = "cars_test_annos_withlabels.mat"
    if not (root / test_annos).exists() and (root / "devkit" / test_annos).exists():
        test_annos = f"devkit/{test_annos}"
    _require("stanford_cars", root, "cars_train", "cars_test", "devkit/cars_meta.mat",
             "devkit/cars_train_annos.mat", test_annos)
    classes = [str(c) for c in np.atleast_1d(_loadmat(root / "devkit/cars_meta.mat")["class_names"])]

    def read(annos, folder):
        a = np.atleast_1d(_loadmat(root / annos)["annotations"])
        return [(str(root / folder / str(r["fname"])), int(r["class"]) - 1) for r in a]

    return Layout(read("devkit/cars_train_annos.mat", "cars_train"), read(test_annos, "cars_test"), classes)


def fgvc_aircraft(root: Path, cfg) -> Layout:
    base = _base(root, "data", "fgvc-aircraft-2013b") / "data"
    _require("fgvc_aircraft", base, "images", "variants.txt", "images_variant_trainval.txt",
             "images_variant_test.txt")
    classes = [ln.strip() for ln in (base / "variants.txt").read_text().splitlines() if ln.strip()]
    index = {c: i for i, c in enumerate(classes)}

    def read(split):
        out = []
        for ln in (base / f"images_variant_{split}.txt").read_text().splitlines():
            if ln.strip():
                img, variant = ln.strip().split(" ", 1)  # variant names contain spaces
                out.append((str(base / "images" / f"{img}.jpg"), index[variant]))
        return out

    return Layout(read("trainval"), read("test"), classes)


def flowers102(root: Path, cfg) -> Layout:
    _require("flowers102", root, "jpg", "imagelabels.mat", "setid.mat")
    labels = np.atleast_1d(_loadmat(root / "imagelabels.mat")["labels"]).astype(int) - 1
    ids = _loadmat(root / "setid.mat")

    def read(*keys):  # image ids are 1-based
        return [(str(root / "jpg" / f"image_{int(i):05d}.jpg"), int(labels[int(i) - 1]))
                for k in keys for i in np.atleast_1d(ids[k])]

    # train + validation for training, as in the L2-SP / DELTA experiments.
    return Layout(read("trnid", "valid"), read("tstid"), [f"flower_{i:03d}" for i in range(1, 103)])


def mit_indoor67(root: Path, cfg) -> Layout:
    _require("mit_indoor67", root, "Images", "TrainImages.txt", "TestImages.txt")
    lists = {s: [ln.strip() for ln in (root / f"{s}Images.txt").read_text().splitlines() if ln.strip()]
             for s in ("Train", "Test")}
    classes = sorted({p.split("/")[0] for v in lists.values() for p in v})
    index = {c: i for i, c in enumerate(classes)}
    read = lambda s: [(str(root / "Images" / p), index[p.split("/")[0]]) for p in lists[s]]  # noqa: E731
    return Layout(read("Train"), read("Test"), classes)


def _folder_tree(top: Path, classes=None, name: str = "image_folder"):
    """(path, label) of every image under `top/<class>/`; labels index `classes` (default: the
    sorted class folders). A class folder without images is an error, not a class with no data
    (it would silently add an output to the head); hidden folders (`.ipynb_checkpoints`) are skipped."""
    found = sorted(d for d in os.listdir(top) if (top / d).is_dir() and not d.startswith("."))
    empty = [d for d in found if not _listdir_images(top / d)]
    if empty:
        more = f" (and {len(empty) - 1} more: {', '.join(empty[1:4])})" if len(empty) > 1 else ""
        raise DataError(f"dataset {name}: class folder {top / empty[0]} holds no images "
                        f"({', '.join(IMAGE_EXTS)}){more}; add its images or remove the folder")
    if classes is not None and set(found) - set(classes):
        extra = sorted(set(found) - set(classes))[0]
        raise DataError(f"dataset {name}: {top / extra} is not a class of {top.parent / 'train'}; "
                        "give every class a train/ folder, or remove it from test/")
    classes = classes or found
    items = [(str(top / c / f), y) for y, c in enumerate(classes) if (top / c).is_dir()
             for f in _listdir_images(top / c)]
    return items, classes


def _seeded_split(items, cfg, test_fraction: float):
    labels = np.array([y for _, y in items])
    tr, te = stratified_split(labels, cfg.train_per_class, cfg.split_seed, cfg.test_per_class, test_fraction)
    return [items[i] for i in tr], [items[i] for i in te]


def caltech256(root: Path, cfg) -> Layout:
    """All 257 folders (clutter included, as in L2-SP); `train_per_class` (30/60) + `test_per_class` seeded."""
    _require("caltech256", root, "256_ObjectCategories")
    items, classes = _folder_tree(root / "256_ObjectCategories", name="caltech256")
    train, test = _seeded_split(items, cfg, cfg.test_fraction)
    return Layout(train, test, classes)


def image_folder(root: Path, cfg) -> Layout:
    if not root.is_dir():
        raise missing_error("image_folder", root, [root])
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, classes = _folder_tree(root / "train")
        test, _ = _folder_tree(root / "test", classes)
        return Layout(train, test, classes)
    items, classes = _folder_tree(root)
    if not items:
        raise missing_error("image_folder", root, ["<class>/<image> files"])
    train, test = _seeded_split(items, cfg, cfg.test_fraction)
    return Layout(train, test, classes)


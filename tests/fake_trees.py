"""Tiny fake copies of each paper dataset in its exact native layout (generated JPEGs + index files).

Each builder writes under `root` and returns the expected (train labels, test labels) as lists
in the order of the dataset's own index files, worked out here from what was written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

_rng = np.random.default_rng(0)


def jpeg(path: Path, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = _rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=80)


def cub200(root: Path, per_class=(4, 3), classes=3):
    base = root / "CUB_200_2011"
    images, split, labels, train, test = [], [], [], [], []
    i = 0
    for c in range(classes):
        folder = f"{c + 1:03d}.Bird_{c}"
        for k in range(sum(per_class)):
            i += 1
            rel = f"{folder}/Bird_{c}_{k}.jpg"
            jpeg(base / "images" / rel)
            is_train = k < per_class[0]
            images.append(f"{i} {rel}")
            split.append(f"{i} {int(is_train)}")
            labels.append(f"{i} {c + 1}")
            (train if is_train else test).append(c)
    (base / "images.txt").write_text("\n".join(images) + "\n")
    (base / "train_test_split.txt").write_text("\n".join(split) + "\n")
    (base / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (base / "classes.txt").write_text("".join(f"{c + 1} {c + 1:03d}.Bird_{c}\n" for c in range(classes)))
    return train, test


def _cell(strings):
    arr = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        arr[i, 0] = np.array([s])
    return arr


def stanford_dogs(root: Path, per_class=(4, 2), classes=3):
    out = {}
    for split, n, off in (("train", per_class[0], 0), ("test", per_class[1], per_class[0])):
        files, labels = [], []
        for c in range(classes):
            for k in range(n):
                rel = f"n0208{c}-breed_{c}/n0208{c}_{k + off}.jpg"
                jpeg(root / "Images" / rel)
                files.append(rel)
                labels.append(c + 1)
        savemat(root / f"{split}_list.mat", {"file_list": _cell(files), "annotation_list": _cell(files),
                                             "labels": np.array(labels, dtype=np.uint8)[:, None]})
        out[split] = [y - 1 for y in labels]
    return out["train"], out["test"]


def _annos(fnames, classes):
    dt = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]
    rec = np.zeros((1, len(fnames)), dtype=dt)
    for i, (f, c) in enumerate(zip(fnames, classes)):
        rec[0, i] = (np.array([[1]]), np.array([[1]]), np.array([[30]]), np.array([[20]]), np.array([[c]]),
                     np.array([f]))
    return rec


def stanford_cars(root: Path, per_class=(3, 2), classes=3):
    out = {}
    names = np.empty((1, classes), dtype=object)
    for c in range(classes):
        names[0, c] = np.array([f"Car Model {c} 2012"])
    (root / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    for split, n, target in (("train", per_class[0], "devkit/cars_train_annos.mat"),
                             ("test", per_class[1], "cars_test_annos_withlabels.mat")):
        # Labels interleaved (not grouped by class), as in the real annotation files.
        fnames = [f"{i + 1:05d}.jpg" for i in range(n * classes)]
        labels = [i % classes + 1 for i in range(n * classes)]
        for f in fnames:
            jpeg(root / f"cars_{split}" / f)
        savemat(root / target, {"annotations": _annos(fnames, labels)})
        out[split] = [y - 1 for y in labels]
    return out["train"], out["test"]


def fgvc_aircraft(root: Path, per_class=(4, 2), classes=3):
    base = root / "fgvc-aircraft-2013b" / "data"
    variants = [f"Boeing 7{c}7-200" for c in range(classes)]  # names with spaces, as the real ones
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "variants.txt").write_text("\n".join(variants) + "\n")
    out, img = {}, 1000000
    for split, n in (("trainval", per_class[0]), ("test", per_class[1])):
        lines, labels = [], []
        for _ in range(n):
            for c in range(classes):
                img += 1
                jpeg(base / "images" / f"{img}.jpg")
                lines.append(f"{img} {variants[c]}")
                labels.append(c)
        (base / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        out[split] = labels
    return out["trainval"], out["test"]


def flowers102(root: Path, per_class=(2, 1, 2), classes=102):
    """102 classes (the reader names 102); trnid/valid/tstid hold 1-based image ids."""
    n = sum(per_class) * classes
    labels = np.array([i % classes + 1 for i in range(n)])
    for i in range(n):
        jpeg(root / "jpg" / f"image_{i + 1:05d}.jpg", size=(12, 10))
    ids = np.arange(1, n + 1)
    a, b = per_class[0] * classes, (per_class[0] + per_class[1]) * classes
    savemat(root / "imagelabels.mat", {"labels": labels[None, :].astype(np.uint8)})
    savemat(root / "setid.mat", {"trnid": ids[None, :a], "valid": ids[None, a:b], "tstid": ids[None, b:]})
    return [int(y) - 1 for y in labels[:b]], [int(y) - 1 for y in labels[b:]]


def mit_indoor67(root: Path, per_class=(4, 2), classes=3):
    names = [f"room{c}" for c in range(classes)]  # sorted order = label order
    out = {}
    for split, n, off in (("Train", per_class[0], 0), ("Test", per_class[1], 100)):
        lines = []
        for name in names:
            for k in range(n):
                rel = f"{name}/img_{k + off}.jpg"
                jpeg(root / "Images" / rel)
                lines.append(rel)
        (root / f"{split}Images.txt").write_text("\n".join(lines) + "\n")
        out[split] = [c for c in range(classes) for _ in range(n)]
    return out["Train"], out["Test"]


def caltech256(root: Path, per_class=8, classes=3):
    for c in range(classes):
        for k in range(per_class + c):  # unequal class sizes
            jpeg(root / "256_ObjectCategories" / f"{c + 1:03d}.thing{c}" / f"{c + 1:03d}_{k:04d}.jpg")
    (root / "256_ObjectCategories" / "001.thing0" / "RENAME2").write_text("not an image")
    return [per_class + c for c in range(classes)]


def image_folder(root: Path, per_class=6, classes=3, split=False):
    for s in (("train", "test") if split else ("",)):
        for c in range(classes):
            for k in range(per_class):
                jpeg(root / s / f"class{c}" / f"{k}.png")

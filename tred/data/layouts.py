"""The paper-scale datasets on disk: one record each, made on the reader of its native layout.

`@disk_dataset(name, expected=..., source=...)` on a reader registers its `DiskDataset` record in
`DATASETS` (by `dataset.name`): the reader, the layout it expects under `dataset.root` (shown in
errors; docs/paper_scale.md), where the files come from (URLs, MD5 checksums, the image count
that verifies a download: `tred.data.download`) and the default folder, `$TRED_DATA/<name>`
(else `./data/<name>`). A reader takes the root and the dataset config and returns a `Layout`:
the train and test lists of (absolute image path, 0-based label) and the class names, in the
splits the L2-SP / DELTA lab used; it raises `Missing` for the files it needs and does not find.
Adding a dataset: its reader here, `configs/dataset/<name>.yaml`, and its test in
tests/test_disk_data.py (a fake tree in tests/fake_trees.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tred.data.download import IMAGE_EXTS, Remote, Source
from tred.data.splits import stratified_split
from tred.errors import DataError


@dataclass
class Layout:
    train: list  # [(path, label)]
    test: list
    classes: list


class LayoutError(Exception):
    """What a reader finds wrong; `DiskDataset.read` reports it as a `DataError` naming the dataset."""


class Missing(LayoutError):
    """Files of the layout that are not under `root`."""

    def __init__(self, root: Path, paths):
        super().__init__(root, paths)
        self.root, self.paths = root, list(paths)


@dataclass(frozen=True)
class DiskDataset:
    name: str         # in messages, and the default folder under $TRED_DATA (else ./data)
    reader: Callable  # (root, dataset config) -> Layout
    expected: str     # the layout under dataset.root
    source: Source    # the files to download (with checksums), or why there is no download

    def read(self, root: Path, cfg) -> Layout:
        """The layout under `root`, every listed file checked to exist."""
        try:
            if not root.exists():
                raise Missing(root, [root])
            layout = self.reader(root, cfg)
            missing = [p for p, _ in layout.train + layout.test if not os.path.exists(p)]
            if missing:
                raise Missing(root, missing)
        except Missing as exc:
            raise self.missing_error(exc.root, exc.paths) from None
        except LayoutError as exc:
            raise DataError(f"dataset {self.name}: {exc}") from None
        return layout

    def missing_error(self, root: Path, missing: list) -> DataError:
        shown = ", ".join(str(m) for m in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        return DataError(
            f"dataset {self.name} is missing or incomplete in {root}: not found: {shown}{more}. "
            f"Expected layout under dataset.root: {self.expected}. Set dataset.root (or $TRED_DATA), "
            "or dataset.download=true where the dataset can be downloaded (see docs/paper_scale.md)")


DATASETS: dict[str, DiskDataset] = {}  # dataset.name -> its record


def disk_dataset(name: str, expected: str, source: Source, configs: tuple = ()):
    """Reader decorator: its record, registered for each of `configs` (the `dataset.name`s it
    serves; default: `name`)."""
    def wrap(reader: Callable) -> Callable:
        record = DiskDataset(name, reader, expected, source)
        for key in configs or (name,):
            if key in DATASETS:
                raise ValueError(f"two on-disk datasets are registered as `{key}`")
            DATASETS[key] = record
        return reader
    return wrap


def _require(root: Path, *rel: str) -> None:
    missing = [r for r in rel if not (root / r).exists()]
    if missing:
        raise Missing(root, missing)


def _base(root: Path, marker: str, sub: str) -> Path:
    """`root`, or `root/sub` when the archive was extracted with its top folder."""
    return root if (root / marker).exists() or not (root / sub / marker).exists() else root / sub


def _lines(path: Path) -> list[list[str]]:
    return [ln.split() for ln in path.read_text().splitlines() if ln.strip()]


def _loadmat(path: Path) -> dict:
    from scipy.io import loadmat  # late: defers scipy to the readers of .mat files

    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for a corrupt file: re-raised as DataError
        raise DataError(f"cannot read {path} ({type(exc).__name__}: {exc}); fetch it again") from None


def _listdir_images(folder: Path) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTS))


_VGG = "https://www.robots.ox.ac.uk/~vgg/data"


@disk_dataset(
    "cub200",
    expected="CUB_200_2011/{images.txt, train_test_split.txt, image_class_labels.txt, classes.txt, "
             "images/<class>/<file>.jpg} (the folder CUB_200_2011/ itself may be the root)",
    source=Source((Remote("https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                          "97eceeb196236b17998738112f37df78"),), 11788))
def cub200(root: Path, cfg) -> Layout:
    base = _base(root, "images.txt", "CUB_200_2011")
    _require(base, "images.txt", "train_test_split.txt", "image_class_labels.txt", "classes.txt", "images")
    paths = {i: p for i, p in _lines(base / "images.txt")}
    is_train = {i: f == "1" for i, f in _lines(base / "train_test_split.txt")}
    label = {i: int(c) - 1 for i, c in _lines(base / "image_class_labels.txt")}
    classes = [" ".join(p[1:]) for p in _lines(base / "classes.txt")]
    train, test = [], []
    for i, p in paths.items():
        (train if is_train[i] else test).append((str(base / "images" / p), label[i]))
    return Layout(train, test, classes)


@disk_dataset(
    "stanford_dogs",
    expected="{Images/<wnid-breed>/<file>.jpg, train_list.mat, test_list.mat} (images.tar + lists.tar extracted)",
    source=Source((Remote("http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar"),
                   Remote("http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar")), 20580))
def stanford_dogs(root: Path, cfg) -> Layout:
    _require(root, "Images", "train_list.mat", "test_list.mat")

    def read(split):
        m = _loadmat(root / f"{split}_list.mat")
        files = np.atleast_1d(m["file_list"])
        labels = np.atleast_1d(m["labels"]).astype(int) - 1
        return [(str(root / "Images" / str(f)), int(y)) for f, y in zip(files, labels)]

    train, test = read("train"), read("test")
    names = {y: Path(p).parent.name.split("-", 1)[-1] for p, y in train + test}
    return Layout(train, test, [names[y] for y in sorted(names)])


@disk_dataset(
    "stanford_cars",
    expected="{cars_train/<file>.jpg, cars_test/<file>.jpg, devkit/cars_meta.mat, "
             "devkit/cars_train_annos.mat, cars_test_annos_withlabels.mat}",
    source=Source(manual=(
        "the original Stanford host is gone; get cars_train.tgz, cars_test.tgz, car_devkit.tgz and "
        "cars_test_annos_withlabels.mat from a mirror (e.g. the Kaggle dataset "
        "'jessicali9530/stanford-cars-dataset') and extract them.")))
def stanford_cars(root: Path, cfg) -> Layout:
    test_annos = "cars_test_annos_withlabels.mat"
    if not (root / test_annos).exists() and (root / "devkit" / test_annos).exists():
        test_annos = f"devkit/{test_annos}"
    _require(root, "cars_train", "cars_test", "devkit/cars_meta.mat",
             "devkit/cars_train_annos.mat", test_annos)
    classes = [str(c) for c in np.atleast_1d(_loadmat(root / "devkit/cars_meta.mat")["class_names"])]

    def read(annos, folder):
        a = np.atleast_1d(_loadmat(root / annos)["annotations"])
        return [(str(root / folder / str(r["fname"])), int(r["class"]) - 1) for r in a]

    return Layout(read("devkit/cars_train_annos.mat", "cars_train"), read(test_annos, "cars_test"), classes)


@disk_dataset(
    "fgvc_aircraft",
    expected="fgvc-aircraft-2013b/data/{images/<id>.jpg, variants.txt, images_variant_trainval.txt, "
             "images_variant_test.txt}",
    source=Source((Remote(f"{_VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz"),), 10000))
def fgvc_aircraft(root: Path, cfg) -> Layout:
    base = _base(root, "data", "fgvc-aircraft-2013b") / "data"
    _require(base, "images", "variants.txt", "images_variant_trainval.txt",
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


@disk_dataset(
    "flowers102",
    expected="{jpg/image_<05d>.jpg, imagelabels.mat, setid.mat}",
    source=Source((Remote(f"{_VGG}/flowers/102/102flowers.tgz", "52808999861908f626f3c1f4e79d11fa"),
                   Remote(f"{_VGG}/flowers/102/imagelabels.mat", "e0620be6f572b9609742df49c70aed4d"),
                   Remote(f"{_VGG}/flowers/102/setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c")), 8189))
def flowers102(root: Path, cfg) -> Layout:
    _require(root, "jpg", "imagelabels.mat", "setid.mat")
    labels = np.atleast_1d(_loadmat(root / "imagelabels.mat")["labels"]).astype(int) - 1
    ids = _loadmat(root / "setid.mat")

    def read(*keys):  # image ids are 1-based
        return [(str(root / "jpg" / f"image_{int(i):05d}.jpg"), int(labels[int(i) - 1]))
                for k in keys for i in np.atleast_1d(ids[k])]

    # train + validation for training, as in the L2-SP / DELTA experiments.
    return Layout(read("trnid", "valid"), read("tstid"), [f"flower_{i:03d}" for i in range(1, 103)])


@disk_dataset(
    "mit_indoor67",
    expected="{Images/<class>/<file>.jpg, TrainImages.txt, TestImages.txt}",
    source=Source((Remote("http://groups.csail.mit.edu/vision/LabelMe/NewImages/indoorCVPR_09.tar"),
                   Remote("http://web.mit.edu/torralba/www/TrainImages.txt"),
                   Remote("http://web.mit.edu/torralba/www/TestImages.txt")), 15620))
def mit_indoor67(root: Path, cfg) -> Layout:
    _require(root, "Images", "TrainImages.txt", "TestImages.txt")
    lists = {s: [ln.strip() for ln in (root / f"{s}Images.txt").read_text().splitlines() if ln.strip()]
             for s in ("Train", "Test")}
    classes = sorted({p.split("/")[0] for v in lists.values() for p in v})
    index = {c: i for i, c in enumerate(classes)}
    read = lambda s: [(str(root / "Images" / p), index[p.split("/")[0]]) for p in lists[s]]  # noqa: E731
    return Layout(read("Train"), read("Test"), classes)


def _folder_tree(top: Path, classes=None):
    """(path, label) of every image under `top/<class>/`; labels index `classes` (default: the
    sorted class folders). A class folder without images is an error, not a class with no data
    (it would silently add an output to the head); hidden folders (`.ipynb_checkpoints`) are skipped."""
    found = sorted(d for d in os.listdir(top) if (top / d).is_dir() and not d.startswith("."))
    empty = [d for d in found if not _listdir_images(top / d)]
    if empty:
        more = f" (and {len(empty) - 1} more: {', '.join(empty[1:4])})" if len(empty) > 1 else ""
        raise LayoutError(f"class folder {top / empty[0]} holds no images ({', '.join(IMAGE_EXTS)}){more}; "
                          "add its images or remove the folder")
    if classes is not None and set(found) - set(classes):
        extra = sorted(set(found) - set(classes))[0]
        raise LayoutError(f"{top / extra} is not a class of {top.parent / 'train'}; "
                          "give every class a train/ folder, or remove it from test/")
    classes = classes or found
    items = [(str(top / c / f), y) for y, c in enumerate(classes) if (top / c).is_dir()
             for f in _listdir_images(top / c)]
    return items, classes


def _seeded_split(items, cfg, test_fraction: float):
    labels = np.array([y for _, y in items])
    tr, te = stratified_split(labels, cfg.train_per_class, cfg.split_seed, cfg.test_per_class, test_fraction)
    return [items[i] for i in tr], [items[i] for i in te]


@disk_dataset(
    "caltech256", configs=("caltech256_30", "caltech256_60"),
    expected="256_ObjectCategories/<NNN.class>/<file>.jpg (257 folders)",
    source=Source((Remote("https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar",
                          "67b4f42ca05d46448c6bb8ecd2220f6d"),), 30607))
def caltech256(root: Path, cfg) -> Layout:
    """All 257 folders (clutter included, as in L2-SP); `train_per_class` (30/60) + `test_per_class` seeded."""
    _require(root, "256_ObjectCategories")
    items, classes = _folder_tree(root / "256_ObjectCategories")
    train, test = _seeded_split(items, cfg, cfg.test_fraction)
    return Layout(train, test, classes)


@disk_dataset(
    "image_folder",
    expected="<class>/<image> (split seeded per dataset.train_per_class / test_fraction) "
             "or {train,test}/<class>/<image> (given split)",
    source=Source(manual="image_folder is your own data: arrange it as root/<class>/<image>."))
def image_folder(root: Path, cfg) -> Layout:
    if not root.is_dir():
        raise Missing(root, [root])
    if (root / "train").is_dir() and (root / "test").is_dir():
        train, classes = _folder_tree(root / "train")
        test, _ = _folder_tree(root / "test", classes)
        return Layout(train, test, classes)
    items, classes = _folder_tree(root)
    if not items:
        raise Missing(root, ["<class>/<image> files"])
    train, test = _seeded_split(items, cfg, cfg.test_fraction)
    return Layout(train, test, classes)


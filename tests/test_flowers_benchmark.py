"""The Flowers-102 benchmark's data path: the official split from the mat files, every image
decoded once into memory (same pixels as the on-disk pipeline), the tuning hold-out from the
images the subset leaves out; and the benchmark's configs."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import fake_trees
from conftest import CONFIGS, compose_cfg
from test_disk_data import dcfg
from tred.config import validate
from tred.data.disk import build_disk
from tred.data.memory import InMemoryImages
from tred.data.pipeline import Pipeline
from tred.errors import ConfigError
from tred.models import build_models

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flowers102"


@pytest.fixture
def tree(tmp_path):
    """102 classes x (2 trnid, 1 valid, 2 tstid) generated JPEGs, 40 x 30 px."""
    root = tmp_path / "flowers102"
    train, test = fake_trees.flowers102(root, per_class=(2, 2, 2))
    return root, train, test


def test_in_memory_reads_the_official_split_from_the_mat_files(tree):
    root, train, test = tree
    data = build_disk(dcfg("flowers102", root, in_memory=True), seed=0)
    assert isinstance(data, InMemoryImages)
    assert (data.num_classes, data.train_size, data.test_size) == (102, len(train), len(test))
    assert data.train_y.tolist() == train and data.test_y.tolist() == test  # trnid + valid, then tstid
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape[1:] == (3, 20, 20)  # stored at `resize`


def test_in_memory_pixels_match_the_on_disk_pipeline(tree):
    root, _, _ = tree
    disk = build_disk(dcfg("flowers102", root), seed=0)
    mem = build_disk(dcfg("flowers102", root, in_memory=True), seed=0)
    (xd, yd), (xm, ym) = next(iter(disk.eval_batches("test", 16))), next(iter(mem.eval_batches("test", 16)))
    assert xm.shape == xd.shape == (16, 3, 16, 16) and torch.equal(ym, yd)
    # Same resize + center crop; the disk path converts to float before cropping, memory after
    # rounding to uint8: at most one grey level apart.
    assert (xm - xd).abs().max() <= 1 / 255 + 1e-6


def test_in_memory_training_crops_are_random_and_seeded(tree):
    root, _, _ = tree
    mem = build_disk(dcfg("flowers102", root, in_memory=True, sample_rate=0.5), seed=3)
    x1, y1 = mem.train_batch(5, 32, seed=3)
    x2, y2 = mem.train_batch(5, 32, seed=3)
    assert x1.shape == (32, 3, 16, 16) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, mem.train_batch(6, 32, seed=3)[0])
    # A training crop is a 16 x 16 window of the stored 20 x 20 image (hflip off here).
    same_class = mem.train_x[mem.train_y == y1[0]].float() / 255
    windows = [img[:, i:i + 16, j:j + 16] for img in same_class for i in range(5) for j in range(5)]
    assert any(torch.allclose(w, x1[0], atol=1e-6) or torch.allclose(w.flip(-1), x1[0], atol=1e-6)
               for w in windows)


def test_decode_uses_the_reduced_jpeg_scale_and_keeps_the_size(tmp_path):
    path = tmp_path / "big.jpg"
    arr = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, quality=90)
    for keep_aspect in (False, True):
        x = Pipeline(40, 32, keep_aspect).decode(str(path))
        assert x.shape == (3, 40, 40) and x.dtype == torch.uint8


def test_validation_from_the_unused_training_images(tree):
    root, train, _ = tree
    cfg = dcfg("flowers102", root, in_memory=True, sample_rate=0.25, validation=True, val_pool="unused")
    val = build_disk(cfg, seed=1)
    table = build_disk(dcfg("flowers102", root, in_memory=True, sample_rate=0.25), seed=1)
    # trains on exactly the subset a table run of the same seed trains on ...
    assert torch.equal(val.train_x, table.train_x) and torch.equal(val.train_y, table.train_y)
    # ... and validates on the other 3 of the 4 training images per class, never on test images
    assert Counter(val.test_y.tolist()) == {c: 3 for c in range(102)}
    assert val.test_size + val.train_size == len(train)
    rows = lambda x: {bytes(img.numpy().tobytes()) for img in x}  # noqa: E731
    assert not rows(val.test_x) & rows(val.train_x) and not rows(val.test_x) & rows(table.test_x)
    with pytest.raises(ConfigError, match="val_pool=unused needs dataset.sample_rate < 1"):
        build_disk(dcfg("flowers102", root, sample_rate=1.0, validation=True, val_pool="unused"), seed=0)


def test_download_is_skipped_when_the_data_is_complete(tree, monkeypatch):
    root, _, _ = tree
    import tred.data.disk as disk

    monkeypatch.setattr(disk, "install", lambda *a: pytest.fail("nothing to download"))
    assert build_disk(dcfg("flowers102", root, download=True), seed=0).train_size == 408


def test_benchmark_regime_final_map_and_epochs():
    """The regime flowers_base documents: a 3 x 3 final feature map, >= 30 epochs."""
    cfg = validate(compose_cfg(["experiment=flowers_table", "method=finetune"], smoke=False))
    d, t = cfg.dataset, cfg.trainer
    model, _ = build_models(cfg.backbone, 102, 0)
    with torch.no_grad():
        fmap = model.backbone.body.forward_features(torch.zeros(1, 3, d.image_size, d.image_size))
    assert fmap.shape[-2:] == (3, 3)
    per_class_train = round(20 * d.sample_rate)  # trnid + valid: 20 per class
    epochs = t.max_iters // ((102 * per_class_train) // t.batch_size)
    assert epochs >= 30 and d.in_memory and d.resize > d.image_size
    assert ((t.max_iters, t.batch_size, t.lr, t.momentum, t.lr_milestones, t.lr_gamma)
            == (480, 32, 0.01, 0.9, [0.6667], 0.1))


def test_table_experiments_read_the_tuned_weights():
    """Every row of both legacy table experiments runs at the weight of the first tuning, which
    they ran with: the baselines' from `regularizer_overrides`, each TRED row's own from
    `method_overrides` (scripts/benchmark.py passes `+tuned=` itself)."""
    from tred.methods import method_of_config

    tuned = OmegaConf.load(CONFIGS / "tuned" / "flowers102_5pc_first.yaml")
    tred_rows = ("tred_max_mmd", "tred_min_mi", "tred_max_mmd_min_mi", "tred_full", "tred_projection")
    for exp in ("flowers_table", "flowers_table_10"):
        for preset, reg in (("finetune", "l2"), ("l2sp", "l2sp"), ("at", "at"), ("delta", "delta"), ("bss", "bss")):
            cfg = validate(compose_cfg([f"experiment={exp}", f"method={preset}"], smoke=False))
            (key, value), = tuned.regularizer_overrides[reg].items()
            assert cfg.regularizer[reg][key] == value
            assert cfg.weights_note == tuned.weights_note
        names = set()
        for preset in tred_rows:
            cfg = validate(compose_cfg([f"experiment={exp}", f"method={preset}"], smoke=False))
            names.add(name := method_of_config(OmegaConf.to_container(cfg)))
            assert cfg.regularizer.tred.alpha == tuned.method_overrides[name].tred.alpha
        assert names == set(tuned.method_overrides)  # every TRED row of the tables, each tuned


@pytest.mark.skipif(not (SHARED / "setid.mat").is_file(), reason="no ../shared/data/flowers102")
def test_the_development_copy_has_the_official_split():
    cfg = OmegaConf.merge(dcfg("flowers102", SHARED), {"image_size": 72, "resize": 82})
    from tred.data.disk import read_layout

    layout = read_layout(cfg)
    assert (len(layout.train), len(layout.test), len(layout.classes)) == (2040, 6149, 102)
    assert Counter(y for _, y in layout.train) == {c: 20 for c in range(102)}
    assert all(os.path.exists(p) for p, _ in layout.test[:50])


@pytest.mark.parametrize("name", ["flowers102_5pc_first", "flowers102", "flowers102_10pc"])
def test_each_committed_tuned_file_sets_every_rows_weight(name):
    """`+tuned=<file>` (what scripts/benchmark.py passes): every row of the tables at that file's
    weight; the re-tuned 5-per-class file differs from the first only in the rows it re-tuned."""
    from tred.methods import method_of_config

    tuned = OmegaConf.load(CONFIGS / "tuned" / f"{name}.yaml")
    for preset, reg in (("finetune", "l2"), ("l2sp", "l2sp"), ("at", "at"), ("delta", "delta"), ("bss", "bss")):
        cfg = validate(compose_cfg(["experiment=benchmark", f"+tuned={name}", f"method={preset}"], smoke=False))
        (key, value), = tuned.regularizer_overrides[reg].items()
        assert cfg.regularizer[reg][key] == value
    for preset in ("tred_max_mmd", "tred_min_mi", "tred_max_mmd_min_mi", "tred_full", "tred_projection"):
        cfg = validate(compose_cfg(["experiment=benchmark", f"+tuned={name}", f"method={preset}"], smoke=False))
        row = method_of_config(OmegaConf.to_container(cfg))
        assert cfg.regularizer.tred.alpha == tuned.method_overrides[row].tred.alpha
    if name == "flowers102":
        first = OmegaConf.load(CONFIGS / "tuned" / "flowers102_5pc_first.yaml")
        moved = {k for group in ("regularizer_overrides", "method_overrides")
                 for k in first[group] if first[group][k] != tuned[group][k]}
        assert moved <= {"l2", "at", "bss", "tred-max_mmd_min_mi"}  # the rows tune-flowers-edges re-tunes
        assert "Re-tuned in sweep" in tuned.weights_note

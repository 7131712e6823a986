"""dataset.budget (images per class trained on) and dataset.label (the name tables give a dataset)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import compose_cfg
from tred.config import validate
from tred.data.splits import balanced_subset
from tred.errors import ConfigError


def test_a_budget_is_the_same_subset_as_the_matching_sample_rate():
    labels = np.repeat(np.arange(4), 20)  # 20 images per class, as Flowers-102's train+val
    for seed in (0, 1, 7):
        assert np.array_equal(balanced_subset(labels, 1.0, seed, budget=5), balanced_subset(labels, 0.25, seed))
        assert np.array_equal(balanced_subset(labels, 1.0, seed, budget=10), balanced_subset(labels, 0.5, seed))
        five, ten = set(balanced_subset(labels, 1.0, seed, 5)), set(balanced_subset(labels, 1.0, seed, 10))
        assert five < ten  # nested


def test_a_class_smaller_than_the_budget_keeps_every_image():
    labels = np.array([0] * 3 + [1] * 8)
    keep = balanced_subset(labels, 1.0, 0, budget=5)
    assert np.bincount(labels[keep]).tolist() == [3, 5]
    with pytest.raises(ConfigError, match="dataset.budget must be >= 1"):
        balanced_subset(labels, 1.0, 0, budget=0)


def test_budget_and_sample_rate_are_one_or_the_other():
    assert validate(compose_cfg(["dataset.budget=5"])).dataset.budget == 5
    with pytest.raises(ConfigError, match=r"dataset.budget=5 \(images per class\) needs budget >= 1 and sample_rate 1"):
        validate(compose_cfg(["dataset.budget=5", "dataset.sample_rate=0.5"]))


def test_the_label_names_the_dataset_in_the_result(smoke):
    result = smoke("dataset.label=my_digits", "dataset.budget=3", "dataset.test_per_class=5")
    assert result["dataset"] == "my_digits" and result["budget"] == 3
    assert result["train_size"] == 30  # 3 per class of digits' 10 classes

"""scripts/tune_summary.py: the choice per method on a generated tuning sweep, and the hand-off
of the chosen weights to the next sweep's configs (--write -> configs/tuned -> compose)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import CONFIGS
from tred.config import validate

_spec = importlib.util.spec_from_file_location(
    "tune_summary", Path(__file__).resolve().parents[1] / "scripts" / "tune_summary.py")
tune_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tune_summary)

# method -> (regularizer, key, published weight, {scale: validation accuracy or "failed"})
GRID = {
    "l2": ("l2", "weight_decay", 1e-4, {0.001: 50.0, 0.01: 52.0, 0.1: 51.0, 1.0: 49.0}),
    # the best value failed once: never chosen, the next best is
    "l2sp": ("l2sp", "alpha", 0.1, {0.001: 40.0, 0.01: 60.0, 0.1: "failed", 1.0: 30.0}),
    # a tie: the value nearest the published weight wins
    "tred-max_mmd_min_mi": ("tred", "alpha", 0.01, {0.001: 45.0, 0.01: 47.0, 0.1: 47.0, 1.0: 10.0}),
    # a second method of regularizer tred: each TRED row gets its own weight (method_overrides)
    "tred-projection": ("tred", "alpha", 0.01, {0.001: 20.0, 0.01: 55.0, 0.1: 35.0, 1.0: 30.0}),
}
# method -> its disentangle settings (the TRED rows' names follow their stage-1 split)
PARTS = {"tred-max_mmd_min_mi": {"name": "max_mmd_min_mi", "parts": "branches"},
         "tred-projection": {"name": "max_mmd_min_mi", "parts": "projection"}}


def make_sweep(root: Path, eval_split: str = "val", grid: dict = GRID) -> Path:
    for method, (reg, key, published, scores) in grid.items():
        for scale, acc in scores.items():
            d = root / method / "flowers102" / "sr0.25" / "seed0" / f"weight_scale={scale}"
            d.mkdir(parents=True)
            cfg = {"seed": 0, "weight_scale": scale, "dataset": {"name": "flowers102"},
                   "regularizer": {reg: {key: float(f"{published * scale:.12g}"), "beta": 0.01}},
                   "disentangle": PARTS.get(method)}
            (d / "config.yaml").write_text(yaml.safe_dump(cfg))
            res = {"method": method, "sweep": "tune_flowers", "eval_split": eval_split, "dataset": "flowers102",
                   "status": "failed" if acc == "failed" else "completed",
                   "test_acc": None if acc == "failed" else acc}
            (d / "result.json").write_text(json.dumps(res))
    return root


def test_written_weights_land_in_the_table_sweeps_configs(tmp_path, capsys):
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    out = configs / "tuned" / "flowers102_5pc_first.yaml"  # what experiment=flowers_table reads
    assert tune_summary.main([str(make_sweep(tmp_path / "s")), "--write", str(out)]) == 0
    text = out.read_text()
    assert "#   l2sp alpha: 0.0001 40.00 | 0.001 60.00* | 0.01 failed | 0.1 30.00\n" in text
    assert "#   tred-max_mmd_min_mi alpha: 1e-05 45.00 | 0.0001 47.00 | 0.001 47.00* | 0.01 10.00\n" in text
    assert "#   l2 weight_decay: 1e-07 50.00 | 1e-06 52.00* | 1e-05 51.00 | 0.0001 49.00\n" in text
    written = OmegaConf.load(out)
    assert written.regularizer_overrides == {"l2": {"weight_decay": 1e-6}, "l2sp": {"alpha": 1e-3}}
    assert written.method_overrides == {"tred-max_mmd_min_mi": {"tred": {"alpha": 1e-3}},
                                        "tred-projection": {"tred": {"alpha": 1e-4}}}
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        for preset, reg, key, value in (("finetune", "l2", "weight_decay", 1e-6), ("l2sp", "l2sp", "alpha", 1e-3),
                                        ("tred_max_mmd_min_mi", "tred", "alpha", 1e-3),
                                        ("tred_projection", "tred", "alpha", 1e-4),
                                        ("tred_min_mi", "tred", "alpha", 0.01)):  # not tuned: published
            cfg = validate(compose(config_name="train", overrides=["experiment=flowers_table", f"method={preset}"]))
            assert cfg.regularizer[reg][key] == pytest.approx(value)
            assert "held-out training data" in cfg.weights_note
        typed = compose(config_name="train", overrides=["experiment=flowers_table", "method=l2sp",
                                                         "regularizer.l2sp.alpha=0.5"])
        assert validate(typed, ["regularizer.l2sp.alpha=0.5"]).regularizer.l2sp.alpha == 0.5  # typed wins


def test_update_replaces_only_the_rows_the_sweep_tunes(tmp_path):
    """--update: a sweep that re-tunes two rows (one TRED row among several) changes those two
    weights; the others keep the earlier file's, whose header stays below the new scores."""
    out = tmp_path / "flowers102.yaml"
    assert tune_summary.main([str(make_sweep(tmp_path / "s")), "--write", str(out)]) == 0
    retune = {"l2": ("l2", "weight_decay", 1e-6, {0.1: 40.0, 1.0: 41.0, 10.0: 45.0}),
              "tred-projection": ("tred", "alpha", 1e-4, {0.1: 56.0, 1.0: 55.0, 10.0: 30.0})}
    sweep = make_sweep(tmp_path / "edges", grid=retune)
    assert tune_summary.main([str(sweep), "--write", str(out), "--update", str(out)]) == 0
    written = OmegaConf.load(out)
    assert written.regularizer_overrides == {"l2": {"weight_decay": pytest.approx(1e-5)}, "l2sp": {"alpha": 1e-3}}
    assert written.method_overrides == {"tred-max_mmd_min_mi": {"tred": {"alpha": 1e-3}},  # kept
                                        "tred-projection": {"tred": {"alpha": pytest.approx(1e-5)}}}
    text = out.read_text()
    assert text.count("@package") == 1
    assert "updating flowers102.yaml: the rows scored below were re-tuned" in text
    assert "#   l2 weight_decay: 1e-07 40.00 | 1e-06 41.00 | 1e-05 45.00* (at the edge of the grid)\n" in text
    assert "# | l2sp alpha: 0.0001 40.00 | 0.001 60.00* | 0.01 failed | 0.1 30.00\n" in text  # the earlier header
    assert written.weights_note.endswith("Re-tuned in sweep `tune_flowers`: l2, tred-projection.")
    with pytest.raises(SystemExit, match="no such tuned file"):
        tune_summary.main([str(sweep), "--write", str(out), "--update", str(tmp_path / "missing.yaml")])


def test_edge_of_the_grid_is_flagged(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "s")
    d = sweep / "l2" / "flowers102" / "sr0.25" / "seed0" / "weight_scale=0.001" / "result.json"
    d.write_text(d.read_text().replace('"test_acc": 50.0', '"test_acc": 99.0'))
    tune_summary.main([str(sweep)])
    assert "chosen at the edge of the grid (the best weight may lie outside it): l2" in capsys.readouterr().out


def set_score(sweep, method, scale, acc):
    path = sweep / method / "flowers102" / "sr0.25" / "seed0" / f"weight_scale={scale}" / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "test_acc": acc}))


def test_beyond_edges_names_the_next_value_past_each_edge_choice(tmp_path, capsys):
    sweep = make_sweep(tmp_path / "s")
    tune_summary.main([str(sweep), "--beyond-edges"])
    assert capsys.readouterr().out == ""  # every choice inside its grid: nothing to extend
    set_score(sweep, "l2", 0.001, 99.0)  # the lowest value wins: one decade lower next
    set_score(sweep, "tred-projection", 1.0, 99.0)  # the highest: one decade higher
    tune_summary.main([str(sweep), "--beyond-edges"])
    assert capsys.readouterr().out.splitlines() == [
        "method=finetune weight_scale=0.0001", "method=tred_projection weight_scale=10.0"]
    tune_summary.main([str(sweep), "--beyond-edges", "--max-values", "4"])  # each row has its 4 already
    assert capsys.readouterr().out == ""
    # Once the value beyond the edge has run and lost, the choice is inside the grid again
    d = sweep / "l2" / "flowers102" / "sr0.25" / "seed0" / "weight_scale=0.0001"
    shutil.copytree(sweep / "l2" / "flowers102" / "sr0.25" / "seed0" / "weight_scale=0.001", d)
    cfg = yaml.safe_load((d / "config.yaml").read_text())
    cfg["weight_scale"], cfg["regularizer"]["l2"]["weight_decay"] = 0.0001, 1e-8
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "result.json").unlink()  # an interrupted round: its unfinished value is run first
    tune_summary.main([str(sweep), "--beyond-edges"])
    assert capsys.readouterr().out.splitlines() == ["method=finetune weight_scale=0.0001"]
    (d / "result.json").write_text(json.dumps({"method": "l2", "eval_split": "val", "dataset": "flowers102",
                                               "status": "completed", "test_acc": 10.0}))
    tune_summary.main([str(sweep), "--beyond-edges"])
    assert capsys.readouterr().out.splitlines() == ["method=tred_projection weight_scale=10.0"]


def test_test_split_results_are_refused(tmp_path):
    with pytest.raises(SystemExit, match="not evaluated on a validation split"):
        tune_summary.main([str(make_sweep(tmp_path / "s", eval_split="test"))])


def test_unfinished_method_is_not_written(tmp_path):
    sweep = make_sweep(tmp_path / "s")
    for d in (sweep / "l2").rglob("result.json"):
        d.unlink()
    with pytest.raises(SystemExit, match="not writing"):
        tune_summary.main([str(sweep), "--write", str(tmp_path / "t.yaml")])
    assert not (tmp_path / "t.yaml").exists()


def add_seed(sweep: Path, seed: int, scores: dict, method: str = "l2") -> None:
    """A second seed of `method`'s runs (a copy of seed 0's configs), with its own scores and the
    runs' provenance fields."""
    for scale, acc in scores.items():
        src = sweep / method / "flowers102" / "sr0.25" / "seed0" / f"weight_scale={scale}"
        d = sweep / method / "flowers102" / "sr0.25" / f"seed{seed}" / f"weight_scale={scale}"
        d.mkdir(parents=True)
        cfg = yaml.safe_load((src / "config.yaml").read_text()) | {"seed": seed}
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        res = json.loads((src / "result.json").read_text()) | {
            "test_acc": acc, "threads": 1, "code_version": {"commit": "abcdef0123456789", "dirty": False},
            "machine": {"cpu_capability": "AVX512"}}
        (d / "result.json").write_text(json.dumps(res))


def test_the_mean_over_seeds_decides_and_the_header_says_which_runs(tmp_path):
    sweep = make_sweep(tmp_path / "s")
    for method, (_, _, _, scores) in GRID.items():  # seed 0 alone picks l2's 1e-6 (52.0)
        second = {s: 60.0 if (method == "l2" and s == 0.1) else (a if a == "failed" else a)
                  for s, a in scores.items()}
        add_seed(sweep, 1, second, method)
    out = tmp_path / "t.yaml"
    # seed 1's completed runs say AVX512, seed 0's say nothing: different kernel settings, not pooled unasked
    with pytest.raises(SystemExit, match=r"different kernel settings \(native AVX512 \(unrecorded\): 15 run\(s\), "
                                         r"e\.g\. l2/flowers102/sr0\.25/seed1/weight_scale=0\.001.*--allow-mixed"):
        tune_summary.main([str(sweep), "--write", str(out)])
    assert not out.exists()
    assert tune_summary.main([str(sweep), "--write", str(out), "--allow-mixed"]) == 0
    text = out.read_text()
    # l2 at 1e-5: (51 + 60) / 2 = 55.5 beats 1e-6's (52 + 52) / 2
    assert "#   l2 weight_decay: 1e-07 50.00 | 1e-06 52.00 | 1e-05 55.50* | 0.0001 49.00\n" in text
    assert OmegaConf.load(out).regularizer_overrides.l2.weight_decay == pytest.approx(1e-5)
    assert "seeds 0, 1)" in text
    # seed 0's fake runs record none of them; seed 1's say commit abcdef0, 1 thread, AVX512
    assert ("# The runs' code abcdef0 (16), not recorded (16); threads per run 1 (16), not recorded (16); "
            "CPU kernels AVX512 (16), not recorded (16); kernel settings native AVX512 (unrecorded) (16), "
            "native unknown (unrecorded) (16).\n") in text


def test_a_value_missing_a_seed_is_never_chosen(tmp_path):
    sweep = make_sweep(tmp_path / "s")
    for method, (_, _, _, scores) in GRID.items():
        add_seed(sweep, 1, scores, method)
    shutil.rmtree(sweep / "l2" / "flowers102" / "sr0.25" / "seed1" / "weight_scale=0.01")  # l2's best, 52.0
    out = tmp_path / "t.yaml"
    assert tune_summary.main([str(sweep), "--write", str(out), "--allow-mixed"]) == 0
    text = out.read_text()
    assert "#   l2 weight_decay: 1e-07 50.00 | 1e-06 1 of its runs missing | 1e-05 51.00* | 0.0001 49.00\n" in text


def test_the_header_names_the_sweep_without_a_machine_path(tmp_path, monkeypatch):
    """Relative to the repository root when the sweep lies in it, else by its name alone: the
    written file is committed, so it never holds an absolute path of the machine that wrote it."""
    repo = tmp_path / "repo"
    sweep = make_sweep(repo / "outputs" / "sweeps" / "tune_x")
    out = tmp_path / "t.yaml"
    monkeypatch.setattr(tune_summary, "ROOT", repo.resolve())
    assert tune_summary.main([str(sweep), "--write", str(out)]) == 0
    assert out.read_text().splitlines()[1].startswith(
        "# Written by scripts/tune_summary.py from outputs/sweeps/tune_x on ")
    monkeypatch.setattr(tune_summary, "ROOT", (tmp_path / "elsewhere").resolve())
    assert tune_summary.main([str(sweep), "--write", str(out)]) == 0
    text = out.read_text()
    assert text.splitlines()[1].startswith("# Written by scripts/tune_summary.py from tune_x on ")
    assert str(tmp_path) not in text


@pytest.mark.parametrize("tuned", sorted((CONFIGS / "tuned").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_tuned_configs_name_their_sweep_by_a_relative_path(tuned):
    header = tuned.read_text().splitlines()[1]
    written_from = header.split(" from ", 1)[1].split(" on ", 1)[0]
    assert header.startswith("# Written by scripts/tune_summary.py from ")
    assert not Path(written_from).is_absolute() and not written_from.startswith("~"), header


def test_into_writes_the_scores_into_a_page_section(tmp_path, capsys):
    page = tmp_path / "results.md"
    page.write_text("# R\n\n<!-- BEGIN generated: tune (x) -->\nold\n<!-- END generated: tune -->\n\nkept\n")
    sweep = make_sweep(tmp_path / "s")
    argv = [str(sweep), "--into", f"{page}#tune"]
    assert tune_summary.main(argv) == 0
    text = page.read_text()
    assert "\nold\n" not in text and text.endswith("<!-- END generated: tune -->\n\nkept\n")
    assert f"_Generated by `scripts/tune_summary.py {' '.join(argv)}`._" in text
    assert "| Method (weight) | x0.001 | x0.01 | x0.1 | x1 | chosen |" in text
    assert "| Fine-tune (L2) `weight_decay` | 50.00 | **52.00** | 51.00 | 49.00 | 1e-06 |" in text
    assert "| L2-SP `alpha` | 40.00 | **60.00** | failed | 30.00 | 0.001 |" in text  # a failed value is never chosen
    assert "| TRED-projection (class-mean split) `alpha` | 20.00 | **55.00** | 35.00 | 30.00 | 0.0001 |" in text
    # a missing section: nothing written, one line
    with pytest.raises(SystemExit, match="has no section 'other'"):
        tune_summary.main([str(sweep), "--into", f"{page}#other"])

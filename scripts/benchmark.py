"""The whole benchmark protocol on any image dataset, in one command: tune every row on held-out
training images, then the table at the chosen weights, at each budget; then the headline.

    python scripts/benchmark.py --dataset image_folder --root /data/my_images [--label my_images] \\
        [--budgets 5,10] [--seeds 0-4] [--tune-seeds 0,1] [--out outputs/benchmark/<label>]
    make benchmark DATA=/data/my_images [DATASET=image_folder] [BUDGETS=5,10] [SEEDS=0-4]

The protocol (docs/results.md, "The protocol"), the same for every dataset and every row:
- the regime of `experiment=benchmark` (Lite0 at 72 px, 1 thread per run, portable kernels), for
  `EPOCHS` epochs of full batches: max_iters = EPOCHS * (training images // batch size);
- a budget is `dataset.budget` images per class, the seed's own subset (nested across budgets);
- tuning never reads the test split: a run of seed s trains on the table's seed-s subset and is
  scored on the training images that subset leaves out (`dataset.validation=true
  dataset.val_pool=unused`), seeds `--tune-seeds`; each row's main weight (`weight_scale`) on
  `--grid` x its published value at the smallest budget, and on `--regrid` x the weight chosen at
  the next smaller budget at each larger one (the same relative grid for every row, including the
  smaller budget's choice); a row whose best value is at an edge of its grid gets the next value
  beyond that edge (one grid step further, the same seeds), up to `--extend` values per row, so
  that a choice is inside the values tried unless its row runs out of them (`scripts/tune_summary.py
  --beyond-edges` says which rows and values); `scripts/tune_summary.py` picks the highest mean and writes
  `<out>/configs/tuned/<label>_<budget>pc.yaml` (`--tuned BUDGET=FILE` uses a file you have instead
  of tuning at that budget; `--retune-edges BUDGET=FILE` tunes only the `--rows` again, on `--regrid`
  x FILE's weights and beyond the edges, in `<out>/<budget>pc/tune-edges`, and writes FILE with
  those rows' weights replaced: the repair of a tuning whose rows were chosen at an edge of a grid
  that had no rounds beyond it);
- the table: every row at its chosen weight x `--seeds`, `scripts/make_table.py` (table.md, .csv,
  .tex, plots/, W&B offline runs); finally `scripts/headline.py` over the budgets
  (`<out>/headline.md`, `<out>/headline.png`);
- a tuning run of seed s trains exactly what the table run of seed s at the same weight trains, so
  the tuning runs keep their final checkpoint (`trainer.keep_checkpoint=true`) and the table's runs
  at the tuning seeds take it over and are only scored (`reuse_from=<the tuning sweep>`;
  tred/engine/checkpoint.py `Checkpointer.adopt`): with 2 tuning seeds of 5, 2/5 of the table's
  training is not done twice. Once the table is complete the kept checkpoints are deleted.

`--tune-only` stops after the tuning (the tuned files written; no table, no headline; the tuning
runs keep no checkpoints, so a later table trains all its runs).

Every step is a command of its own, printed before it runs (`--dry-run` prints them only);
finished runs are skipped, so the same command resumes. A failed step stops the protocol with
its exit status (re-run to resume).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tred.engine.checkpoint import CHECKPOINT  # noqa: E402

# The rows of every table: the baselines, the paper's three TRED variants, TRED's default and its control.
ROWS = ("finetune", "l2sp", "at", "delta", "bss", "tred_max_mmd", "tred_min_mi", "tred_max_mmd_min_mi",
        "tred_projection", "tred_full")
EXTEND = 2  # values per row beyond the grid, each one step past the edge the row was chosen at
GRID = "0.001,0.01,0.1,1.0"  # published weight x these, at the smallest budget
REGRID = "0.1,1.0,10.0"  # the next smaller budget's choice x these, at each larger budget
EPOCHS = 32
BATCH = 32


def seeds(text: str) -> list[int]:
    """`0-4` or `0,1,3`."""
    if "-" in text and "," not in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",") if s]


def training_images(dataset: str, root: str | None, budget: int, extra: list[str]) -> int:
    """How many images the budget trains on (every class has `budget`, or all it has if fewer)."""
    import numpy as np
    from hydra import compose, initialize_config_dir

    from tred.data import LOADERS
    from tred.data.splits import balanced_subset, stratified_split
    from tred.schema import register_resolvers

    register_resolvers()
    overrides = ["experiment=benchmark", f"dataset={dataset}", *([f"dataset.root={root}"] if root else []),
                 *[e for e in extra if e.startswith("dataset.")]]
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        d = compose(config_name="train", overrides=overrides).dataset
    if d.name in LOADERS:  # embedded: the seeded split of the packaged images
        _, labels = LOADERS[d.name]()
        train_idx, _ = stratified_split(labels, d.train_per_class, d.split_seed, d.test_per_class)
        labels = labels[train_idx]
    else:
        from tred.data.disk import read_layout

        labels = np.array([y for _, y in read_layout(d).train])
    return len(balanced_subset(labels, 1.0, 0, budget))


class Protocol:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out or f"outputs/benchmark/{args.label}")
        self.tuned_dir = self.out / "configs" / "tuned"
        self.python = sys.executable

    def step(self, cmd: list[str], capture: bool = False) -> str:
        """Run one step, printed first; `capture`: return its standard output (also printed)."""
        print("+ " + shlex.join(cmd), flush=True)
        if self.args.dry_run:
            return ""
        done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE if capture else None, text=True)
        if capture:
            print(done.stdout, end="", flush=True)
        if done.returncode != 0:
            sys.exit(f"error: step failed (exit {done.returncode}); fix it and run the same command again to resume")
        return done.stdout or ""

    def common(self, budget: int) -> list[str]:
        a = self.args
        n = training_images(a.dataset, a.root, budget, a.set) if not a.dry_run else None
        iters = a.epochs * (n // a.batch_size) if n is not None else "<epochs x images // batch>"
        if iters == 0:
            sys.exit(f"error: {n} training images at budget {budget} give no full batch of {a.batch_size}; "
                     "lower --batch-size or raise the budget")
        return ["experiment=benchmark", f"dataset={a.dataset}", f"dataset.label={a.label}",
                f"dataset.budget={budget}", f"trainer.max_iters={iters}", f"trainer.batch_size={a.batch_size}",
                *([f"dataset.root={a.root}"] if a.root else []), f"hydra/launcher={a.launcher}",
                f"hydra.searchpath=[file://{self.out.resolve() / 'configs'}]", *a.set]

    def tuned_name(self, budget: int) -> str:
        return f"{self.args.label}_{budget}pc"

    def tune(self, budget: int, previous: str | None, part: str = "tune", update: Path | None = None) -> Path:
        """Tune the rows at `budget` around `previous` (a tuned file's name; None: the published
        weights) in `<out>/<budget>pc/<part>`; `update`: the written file is that one with the tuned
        rows replaced. Returns the sweep directory."""
        a = self.args
        sweep = self.out / f"{budget}pc" / part
        grid, base = (a.regrid, [f"+tuned={previous}"]) if previous else (a.grid, [])
        common = self.common(budget)
        name = f"{a.label}_{budget}pc_{part.replace('-', '_')}"

        def sweep_of(rows, values):
            self.step([self.python, "scripts/train.py", "-m", *common, *base, "dataset.validation=true",
                       # the table takes over the chosen ones' training (--tune-only: no table here to do it)
                       "dataset.val_pool=unused", f"trainer.keep_checkpoint={str(not a.tune_only).lower()}",
                       f"method={','.join(rows)}", f"weight_scale={values}",
                       f"seed={','.join(map(str, seeds(a.tune_seeds)))}", f"sweep_name={name}",
                       f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir='${run_name}/weight_scale=${weight_scale}'"])

        sweep_of(a.rows, grid)
        # Rounds beyond the edges, until every choice is inside its grid or its row has `--extend`
        # values more than the grid; an interrupted round's values are finished first.
        beyond = [self.python, "scripts/tune_summary.py", str(sweep), "--beyond-edges",
                  "--max-values", str(len(grid.split(",")) + a.extend)]
        if a.dry_run:
            print(f"+ {shlex.join(beyond)}  (then each row chosen at an edge: one more value beyond it, "
                  f"up to {a.extend} more per row)")
        rounds = 0 if a.dry_run or a.extend == 0 else 4 * len(a.rows) * (a.extend + 1)  # a safety bound only
        for _ in range(rounds):
            groups: dict[str, list[str]] = {}  # the next value -> the rows that need it
            for line in self.step(beyond, capture=True).splitlines():
                fields = dict(item.partition("=")[::2] for item in line.split())
                groups.setdefault(fields["weight_scale"], []).append(fields["method"])
            if not groups:
                break
            for value, rows in sorted(groups.items(), key=lambda item: float(item[0])):
                sweep_of(rows, value)
        self.step([self.python, "scripts/tune_summary.py", str(sweep), "--write",
                   str(self.tuned_dir / f"{self.tuned_name(budget)}.yaml"),
                   *(["--update", str(update)] if update else [])])
        return sweep

    def table(self, budget: int, tuned: str, tuning: Path | None) -> Path:
        """The table at `budget`; `tuning`: the tuning sweep made here, whose kept checkpoints it adopts."""
        a = self.args
        sweep = self.out / f"{budget}pc" / "table"
        reuse = [f"reuse_from={tuning}"] if tuning else []  # the tuning runs' training, where it is the same
        self.step([self.python, "scripts/train.py", "-m", *self.common(budget), f"+tuned={tuned}", *reuse,
                   f"method={','.join(a.rows)}", f"seed={','.join(map(str, seeds(a.seeds)))}",
                   f"sweep_name={a.label}_{budget}pc", f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${run_name}"])
        if tuning:
            self.drop_kept_checkpoints(tuning)
        self.step([self.python, "scripts/make_table.py", str(sweep), *(["--wandb"] if a.wandb else [])])
        return sweep

    def drop_kept_checkpoints(self, tuning: Path) -> None:
        """The table is complete: the finished tuning runs' final checkpoints have served."""
        kept = [c for c in sorted(tuning.rglob(CHECKPOINT)) if (c.parent / "result.json").is_file()]
        print(f"+ deleting the final checkpoints of the {len(kept)} finished tuning runs under {tuning} "
              "(kept for the table to take over)", flush=True)
        if not self.args.dry_run:
            for c in kept:
                c.unlink()

    def run(self) -> None:
        a = self.args
        given = dict(item.split("=", 1) for item in a.tuned)
        again = dict(item.split("=", 1) for item in a.retune_edges)
        budgets = sorted(int(b) for b in a.budgets.split(","))
        self.tuned_dir.mkdir(parents=True, exist_ok=True)
        previous, sweeps = None, []
        for budget in budgets:
            name, tuning = self.tuned_name(budget), None
            if str(budget) in given:  # a tuning you already have: copied, so the output folder holds it
                if not a.dry_run:
                    shutil.copyfile(given[str(budget)], self.tuned_dir / f"{name}.yaml")
                print(f"budget {budget}: weights from {given[str(budget)]} (no tuning)")
            elif str(budget) in again:  # that tuning's rows --rows again, around its weights
                first = self.tuned_dir / f"{name}_first.yaml"
                if not a.dry_run:
                    shutil.copyfile(again[str(budget)], first)
                tuning = self.tune(budget, first.stem, part="tune-edges", update=first)
            else:
                prior = previous
                if prior is None and given:  # a larger budget regrids around the file given for a smaller one
                    smaller = [int(b) for b in given if int(b) < budget]
                    if smaller:
                        prior = self.tuned_name(max(smaller))
                        if not a.dry_run:
                            shutil.copyfile(given[str(max(smaller))], self.tuned_dir / f"{prior}.yaml")
                tuning = self.tune(budget, prior)
            previous = name
            if not a.tune_only:
                sweeps.append((budget, self.table(budget, name, tuning)))
        if a.tune_only:
            print(f"tuned files in {self.tuned_dir} (--tune-only: no table)")
            return
        self.step([self.python, "scripts/headline.py", *(f"{b} per class={s}" for b, s in sweeps),
                   "--figure", str(self.out / "headline.png"), "--out", str(self.out / "headline.md"),
                   "--title", f"{a.label}: paired difference to fine-tuning"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="image_folder", help="the reader: image_folder, flowers102, cub200, ...")
    ap.add_argument("--root", default=None, help="the dataset's folder (default: $TRED_DATA/<dataset>)")
    ap.add_argument("--label", default=None, help="the dataset's name in tables and plots (default: the folder's name)")
    ap.add_argument("--budgets", default="5,10", help="images per class, e.g. 5,10")
    ap.add_argument("--seeds", default="0-4", help="table seeds, e.g. 0-4 or 0,1,2")
    ap.add_argument("--tune-seeds", default="0,1")
    ap.add_argument("--epochs", type=int, default=EPOCHS, help="epochs of full batches per run")
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--grid", default=GRID)
    ap.add_argument("--regrid", default=REGRID)
    ap.add_argument("--extend", type=int, default=EXTEND,
                    help="values per row beyond the grid, each one step past the edge it was chosen at "
                         "(0: the grid only)")
    ap.add_argument("--rows", type=lambda s: s.split(","), default=list(ROWS))
    ap.add_argument("--tuned", action="append", default=[], metavar="BUDGET=FILE",
                    help="use this tuned file at that budget instead of tuning there")
    ap.add_argument("--retune-edges", action="append", default=[], metavar="BUDGET=FILE",
                    help="tune the --rows again at that budget, on --regrid x FILE's weights and beyond the "
                         "edges; the tuned file is FILE with those rows replaced")
    ap.add_argument("--tune-only", action="store_true", help="stop after the tuning (no table, no headline)")
    ap.add_argument("--out", default=None, help="the output folder (default outputs/benchmark/<label>)")
    ap.add_argument("--launcher", default="parallel", help="hydra/launcher of the sweeps (parallel, basic, slurm)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="one more override for every run (repeatable)")
    ap.add_argument("--wandb", action="store_true", help="also log each table to W&B (offline)")
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = ap.parse_args(argv)
    if args.label is None:
        args.label = Path(args.root).resolve().name if args.root else args.dataset
    for flag, items in (("--tuned", args.tuned), ("--retune-edges", args.retune_edges)):
        for item in items:
            budget, sep, path = item.partition("=")
            if not sep or not budget.isdigit() or not Path(path).is_file():
                print(f"error: {flag} {item!r}: give BUDGET=FILE with an existing file", file=sys.stderr)
                return 2
    both = {i.partition("=")[0] for i in args.tuned} & {i.partition("=")[0] for i in args.retune_edges}
    if both:
        print(f"error: budget {', '.join(sorted(both))} given to both --tuned and --retune-edges", file=sys.stderr)
        return 2
    Protocol(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

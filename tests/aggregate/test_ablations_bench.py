"""bench/ablations.py: which runs it makes, on which cache, and how it picks the best single timestep (fit-head
and evaluate stubbed: the real ones run in bench/dg_protocol.py's tests and by hand)."""

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ablations.py"
DICE_BY_TIMESTEP = {1: 0.6, 10: 0.7}  # source validation Dice of the single-timestep runs: 10 is the best


@pytest.fixture
def ablations(monkeypatch):
    """The script with one protocol, fit-head and evaluate replaced by a stub that writes a run record."""
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # as when the script runs: its sibling modules import
    spec = importlib.util.spec_from_file_location("ablations", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "PROTOCOLS", {"single-DRIVE": (["DRIVE"], ["DRIVE", "STARE"])})
    module.calls = []

    def run_one(dgss, store, run_dir, sources, targets, head, seed, options, key, threshold=None):
        if (run_dir / "run.json").is_file():  # a run made of another's heads: evaluated only
            return json.loads((run_dir / "bench_timing.json").read_text())
        module.calls.append((run_dir.parts[-4], seed, tuple(options), key))
        step = int(options[options.index("--timesteps") + 1]) if "--timesteps" in options else None
        members = int(options[options.index("--ensemble") + 1]) if "--ensemble" in options else 1
        run_dir.mkdir(parents=True, exist_ok=True)
        heads = [f"head_{member:02d}.safetensors" for member in range(members)]
        for name in heads:
            (run_dir / name).write_text(name)
        history = [{"dice": DICE_BY_TIMESTEP.get(step, 0.5)}]
        record = {"head_files": heads, "selection": [{"history": history}] * members,
                  "training": {"ensemble": members}}
        (run_dir / "run.json").write_text(json.dumps(record))
        (run_dir / "bench_timing.json").write_text(json.dumps({"fit_s": 10.0}))
        return {"fit_s": 10.0, "eval_s": 1.0}

    def score_rows(variant, protocol, head, seed, run_dir, timing, threshold=None):
        return [{"variant": variant, "protocol": protocol, "target": target, "unseen": target != "DRIVE",
                 "head": head, "seed": seed, "dice": 0.7, "auc_roc": 0.9, "auc_pr": 0.8, "sensitivity": 0.7,
                 "specificity": 0.9, "image_dice_mean": 0.7, "threshold": 0.5, "n_images": 2,
                 "fit_s": timing["fit_s"], "eval_s": 1.0} for target in ("DRIVE", "STARE")]

    monkeypatch.setattr(module, "run_one", run_one)
    monkeypatch.setattr(module, "score_rows", score_rows)
    return module


def test_every_row_runs_on_its_cache_and_the_best_single_timestep_carries_on(ablations, aggregate_cache, tmp_path,
                                                                            monkeypatch, capsys):
    for dataset in ablations.DATASETS:
        aggregate_cache(dataset, n_images=2)
    store = tmp_path / "store"
    default_key = ablations.FeatureStore(store).entry("DRIVE").key
    out = tmp_path / "results" / "ablations.csv"
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--store", str(store), "--seeds", "0,1", "--runs",
                                      str(tmp_path / "runs"), "--csv", str(out)])
    ablations.main()
    printed = capsys.readouterr().out
    for extraction in ("ddim", "noised", "raw"):  # not cached: skipped, with the command that makes them
        assert f"entry {extraction} (key " in printed
    assert "--mode ddim --inversion-steps 50" in printed and "--mode noised --draws 4" in printed
    ran = {(variant, seed) for variant, seed, _, _ in ablations.calls}
    assert {variant for variant, _ in ran} == {"default", "gate-mean", "vote-10", "gate-single-t1",
                                               "gate-single-t10"}  # vote-3 is vote-10's first three heads
    vote_3 = json.loads((tmp_path / "runs" / "vote-3" / "single-DRIVE" / "tsfreqagg" / "seed1" / "run.json")
                        .read_text())
    assert vote_3["head_files"] == [f"head_0{member}.safetensors" for member in range(3)]
    assert len(vote_3["selection"]) == vote_3["training"]["ensemble"] == 3
    assert ("gate-single-t10", 1) in ran and ("gate-single-t1", 1) not in ran  # the best of seed 0 carries on
    assert {key for *_, key in ablations.calls} == {default_key}
    options = {variant: opts for variant, _, opts, _ in ablations.calls}
    assert options["default"] == ("--epochs", "40")  # every row as the table was first measured
    assert options["gate-mean"] == ("--epochs", "40", "--head-param", "gate=mean")
    assert options["vote-10"] == ("--epochs", "40", "--ensemble", "10")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 * (4 * 2 + 2 + 1)  # two targets x (4 variants x 2 seeds + 2 candidates + the best again)
    assert {row["fit_s"] for row in rows if row["variant"] == "vote-3"} == {"3.0"}  # 3/10 of vote-10's
    table = out.with_suffix(".md").read_text()
    assert "best single timestep for single-DRIVE (source validation Dice at seed 0): 10" in table
    assert "| vote-10 | single-DRIVE | STARE | 2 | 0.700 ± 0.000 | +0.000 | +0.000 ± 0.000 (0 of 2 up) |" in table
    assert out.with_suffix(".png").is_file()


def test_the_change_paired_by_seed_sees_through_the_spread_the_seeds_cause(ablations):
    """Seeds that move every variant alike (0.60 to 0.70 here) hide a steady gain from the unpaired spread."""
    def row(variant, seed, dice):
        return {"variant": variant, "protocol": "single-DRIVE", "target": "STARE", "seed": str(seed),
                "dice": str(dice)}

    rows = [row("default", 0, 0.60), row("default", 1, 0.70), row("default", 2, 0.65),
            row("gate-mean", 0, 0.62), row("gate-mean", 1, 0.72), row("gate-mean", 2, 0.67),
            row("gate-mean", 3, 0.99)]  # no default at seed 3: not paired
    assert ablations.paired_change(rows, "gate-mean", "single-DRIVE", "STARE") == "+0.020 ± 0.000 (3 of 3 up)"
    assert ablations.paired_change(rows, "gate-mean", "single-DRIVE", "CHASE_DB1") == ""
    assert ablations.paired_change(rows, "default", "single-DRIVE", "STARE") == ""


def test_pieces_run_side_by_side_merge_into_one_table_later_ones_winning(ablations, tmp_path, monkeypatch):
    from dg_protocol import COLUMNS

    def piece(name, dice_by_seed):
        path = tmp_path / f"ablations_{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            for variant, seed, dice in dice_by_seed:
                writer.writerow({column: "1" for column in COLUMNS} | {
                    "variant": variant, "protocol": "single-DRIVE", "target": "STARE", "unseen": "True",
                    "head": "tsfreqagg", "seed": str(seed), "dice": str(dice), "threshold": "0.5"})
        return path

    first = piece("a", [("default", 0, 0.60), ("default", 1, 0.70), ("noised-4", 0, 0.65)])
    second = piece("b", [("noised-4", 0, 0.66), ("noised-4", 1, 0.74)])  # seed 0 scored again: it wins
    out = tmp_path / "ablations.csv"
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--merge", str(first), str(second), "--csv", str(out),
                                      "--runs", str(tmp_path / "runs")])
    ablations.main()
    rows = {(row["variant"], row["seed"]): row["dice"] for row in csv.DictReader(out.open())}
    assert rows == {("default", "0"): "0.6", ("default", "1"): "0.7", ("noised-4", "0"): "0.66",
                    ("noised-4", "1"): "0.74"}
    assert "| noised-4 | single-DRIVE | STARE | 2 | 0.700 ± 0.057 | +0.050 | +0.050 ± 0.014 (2 of 2 up) |" in \
        out.with_suffix(".md").read_text()
    assert not ablations.calls and out.with_suffix(".png").is_file()


def test_variant_entries_differ_from_the_default_in_their_own_fields_only(ablations, aggregate_cache, tmp_path):
    for dataset in ablations.DATASETS:
        aggregate_cache(dataset, n_images=1)
    keys, configs = ablations.variant_keys(ablations.FeatureStore(tmp_path / "store"), None)
    assert len(set(keys.values())) == 4
    assert (configs["ddim"].mode, configs["ddim"].inversion_steps) == ("ddim", 50)
    assert (configs["noised"].mode, configs["noised"].draws) == ("noised", 4) and configs["raw"].bands == "none"
    assert configs["raw"].timesteps == configs["anchored"].timesteps == (1, 10)
    command = ablations.extract_command("dgss", tmp_path / "s", "STARE", configs["noised"], "noised", None)
    assert command[-4:] == ["--mode", "noised", "--draws", "4"] and "--timesteps" in command


def test_single_candidates_limit_the_timesteps_tried_and_refuse_uncached_ones(ablations, aggregate_cache, tmp_path,
                                                                            monkeypatch):
    for dataset in ablations.DATASETS:
        aggregate_cache(dataset, n_images=2)
    argv = ["ablations.py", "--store", str(tmp_path / "store"), "--seeds", "0", "--variant", "single", "--runs",
            str(tmp_path / "runs"), "--csv", str(tmp_path / "ablations.csv")]
    monkeypatch.setattr(sys, "argv", [*argv, "--single-candidates", "10"])
    ablations.main()
    assert [variant for variant, *_ in ablations.calls] == ["gate-single-t10"]
    monkeypatch.setattr(sys, "argv", [*argv, "--single-candidates", "10,500"])
    with pytest.raises(SystemExit, match="cached timesteps are 1,10"):
        ablations.main()


def test_targets_limit_what_a_variant_extracts_to_them_and_the_sources_training_split(ablations, aggregate_cache,
                                                                                     tmp_path, monkeypatch, capsys):
    for dataset in ablations.DATASETS:
        aggregate_cache(dataset, n_images=2)
    monkeypatch.setattr(ablations, "PROTOCOLS", {"single-DRIVE": (["DRIVE"], ["DRIVE", "STARE", "CHASE_DB1"])})
    monkeypatch.setattr(sys, "argv", ["ablations.py", "--store", str(tmp_path / "store"), "--seeds", "0",
                                      "--variant", "noised-4", "--targets", "STARE", "--runs", str(tmp_path / "runs"),
                                      "--csv", str(tmp_path / "ablations.csv")])
    ablations.main()
    commands = {line.split()[3]: line for line in capsys.readouterr().out.splitlines()
                if line.startswith("  dgss extract")}
    assert set(commands) == {"DRIVE", "STARE"}
    assert "--split training" in commands["DRIVE"] and "--split" not in commands["STARE"]
    assert ablations.calls == []  # its entry is not cached: no run
    assert ablations.image_needs(["single-DRIVE"], None) == {"DRIVE": None, "STARE": None, "CHASE_DB1": None}


def test_stopping_a_bench_stops_the_command_it_runs(tmp_path):
    """`kill BENCH` must not leave its fit-head running on, to write a run the bench never timed."""
    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    bench = (f"import sys; sys.path.insert(0, {str(SCRIPT.parent)!r}); import dg_protocol; "
             f"dg_protocol.timed([sys.executable, '-c', {child!r}])")
    parent = subprocess.Popen([sys.executable, "-c", bench])
    deadline = time.monotonic() + 60
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the bench never started its command"
        time.sleep(0.1)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=30) != 0
    child_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(100):
            os.kill(child_pid, 0)  # raises once the child is gone
            time.sleep(0.1)

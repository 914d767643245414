#!/usr/bin/env python3
"""Runs tapegrad-simclr-digits as a user would and checks what it writes and how it fails.

usage: test_simclr_digits.py CHECK PROGRAM

CHECK is one of determinism, outputs, graphviz, command_line, bad_data. Exit status 0 is a pass,
1 a failure and 77 a skip (meson's convention), used when Graphviz is not installed.
"""

import json
import math
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

SKIP = 77
SVG = "{http://www.w3.org/2000/svg}"


def run(program, *arguments):
    return subprocess.run([program, *arguments], capture_output=True, text=True, timeout=240)


def run_ok(program, *arguments):
    result = run(program, *arguments)
    if result.returncode != 0:
        raise AssertionError(f"{arguments} exited with {result.returncode}: {result.stderr}")
    return result


def short_run(program, out, seed=3):
    """Two epochs of 64-pair batches: 21 steps per epoch, enough points for a chart, in seconds."""
    return run_ok(program, "--epochs", "2", "--batch", "64", "--seed", str(seed), "--out", str(out))


def without_seconds(summary):
    summary = dict(summary)
    del summary["seconds"]
    return summary


def check_determinism(program, folder):
    short_run(program, folder / "first")
    short_run(program, folder / "second")
    first = json.loads((folder / "first" / "summary.json").read_text())
    second = json.loads((folder / "second" / "summary.json").read_text())
    assert without_seconds(first) == without_seconds(second), (first, second)
    short_run(program, folder / "other_seed", seed=4)
    other = json.loads((folder / "other_seed" / "summary.json").read_text())
    assert other["loss"]["per_epoch"] != first["loss"]["per_epoch"], "seeds 3 and 4 gave the same losses"


def check_summary(summary):
    for key in ("knn_accuracy", "knn_accuracy_shifted"):
        for extractor in ("raw_pixels", "random_init", "trained"):
            value = summary[key][extractor]
            assert 0.0 <= value <= 1.0, (key, extractor, value)
    assert summary["seed"] == 3
    assert summary["loss"]["first_epoch"] == summary["loss"]["per_epoch"][0]
    assert summary["loss"]["last_epoch"] == summary["loss"]["per_epoch"][-1]
    assert len(summary["loss"]["per_epoch"]) == 2
    assert all(math.isfinite(loss) and loss > 0 for loss in summary["loss"]["per_epoch"])
    assert summary["seconds"] > 0
    parameters = summary["hyperparameters"]
    assert parameters["epochs"] == 2
    assert parameters["batch"] == 64
    assert parameters["temperature"] == 0.2
    assert parameters["optimizer"]["lr"] == 0.003
    assert parameters["optimizer"]["beta1"] == 0.9
    assert parameters["optimizer"]["beta2"] == 0.999
    assert parameters["train_images"] == 1400
    assert parameters["test_images"] == 397
    assert parameters["steps_per_epoch"] == 21
    assert parameters["augmentation"]["noise_std"] == 0.1


def check_svg(path, steps):
    root = ElementTree.parse(path).getroot()
    assert root.tag == SVG + "svg", root.tag
    lines = root.findall(f".//{SVG}polyline")
    assert len(lines) == 1, f"{len(lines)} polylines"
    points = lines[0].get("points").split()
    assert len(points) == steps, f"{len(points)} points for {steps} steps"
    xs = [float(point.split(",")[0]) for point in points]
    assert xs == sorted(xs), "x coordinates must increase"
    assert len(set(xs)) == steps, "x coordinates must be distinct"
    texts = ["".join(text.itertext()) for text in root.iter(SVG + "text")]
    assert "training step" in texts, texts
    assert any(text.startswith("NT-Xent loss") for text in texts), texts
    assert any("SimCLR" in text for text in texts), texts
    assert sum(1 for text in texts if text.replace(".", "").isdigit()) >= 6, "too few tick labels"


def check_outputs(program, folder):
    result = short_run(program, folder)
    assert "epoch   1/2" in result.stderr, result.stderr
    assert "steps/s" in result.stderr, result.stderr
    assert "clean" in result.stdout, result.stdout
    assert "shifted by one pixel" in result.stdout, result.stdout
    check_summary(json.loads((folder / "summary.json").read_text()))
    check_svg(folder / "loss.svg", steps=42)
    dot = (folder / "step.dot").read_text()
    assert dot.startswith("digraph tape {"), dot[:80]
    for name in ("W1", "b1", "W2", "b2", "W3", "b3", "two views", "matmul", "relu", "peripheries=2"):
        assert name in dot, f"{name} missing from step.dot"


def check_graphviz(program, folder):
    dot = shutil.which("dot")
    if dot is None:
        print("skipped: Graphviz 'dot' is not installed (Debian package graphviz)")
        return SKIP
    short_run(program, folder)
    result = subprocess.run([dot, "-Tsvg", str(folder / "step.dot"), "-o", str(folder / "step.svg")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    ElementTree.parse(folder / "step.svg")
    return 0


def expect_usage_error(program, arguments, fragment):
    result = run(program, *arguments)
    assert result.returncode == 2, f"{arguments}: exit status {result.returncode}, stderr {result.stderr}"
    assert fragment in result.stderr, f"{arguments}: {fragment!r} not in {result.stderr!r}"


def check_command_line(program, folder):
    expect_usage_error(program, ["--epochs", "-1"], "--epochs must be >= 0, but got -1")
    expect_usage_error(program, ["--batch", "0"], "--batch must be >= 1, but got 0")
    expect_usage_error(program, ["--batch", "1401"], "--batch must be at most 1400, the train split's size, but got 1401")
    expect_usage_error(program, ["--lr", "0"], "--lr must be positive and finite, but got 0")
    expect_usage_error(program, ["--lr", "-0.5"], "but got -0.5")
    expect_usage_error(program, ["--temperature", "0"], "--temperature must be positive and finite, but got 0")
    expect_usage_error(program, ["--temperature", "inf"], "but got inf")
    expect_usage_error(program, ["--epochs", "two"], "two")
    expect_usage_error(program, ["--no-such-option"], "--no-such-option")
    help_text = run_ok(program, "--help").stdout
    for option in ("--data", "--out", "--epochs", "--seed", "--temperature", "--batch", "--lr"):
        assert option in help_text, f"{option} missing from --help"
    # --epochs 0 trains nothing but still evaluates and writes every file.
    run_ok(program, "--epochs", "0", "--out", str(folder))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["loss"]["first_epoch"] is None
    assert summary["knn_accuracy"]["trained"] == summary["knn_accuracy"]["random_init"]


def expect_data_error(program, path, fragment):
    result = run(program, "--data", str(path), "--epochs", "1")
    assert result.returncode == 1, f"{path}: exit status {result.returncode}"
    assert str(path) in result.stderr, f"{path} not named in {result.stderr!r}"
    assert fragment in result.stderr, f"{fragment!r} not in {result.stderr!r}"


def check_bad_data(program, folder):
    line = ",".join(["3"] * 64) + ",5"
    expect_data_error(program, folder / "missing.csv", "the data file must exist and be readable")
    (folder / "empty.csv").write_text("")
    expect_data_error(program, folder / "empty.csv", "must contain at least one image")
    (folder / "columns.csv").write_text(line + "\n" + line + ",1\n")
    expect_data_error(program, folder / "columns.csv", "66 values in")
    (folder / "pixel.csv").write_text(line + "\n" + line.replace("3", "17", 1) + "\n")
    expect_data_error(program, folder / "pixel.csv", "\"17\" in " + str(folder / "pixel.csv") + " line 2 column 1")
    (folder / "label.csv").write_text(line[:-1] + "12\n")
    expect_data_error(program, folder / "label.csv", "a label must be an integer in 0..9")
    (folder / "few.csv").write_text((line + "\n") * 4)
    expect_data_error(program, folder / "few.csv", "4 images in")
    unwritable = Path("/dev/null") / "out"
    result = run(program, "--epochs", "0", "--out", str(unwritable))
    assert result.returncode == 1, f"--out {unwritable}: exit status {result.returncode}"
    assert str(unwritable) in result.stderr, result.stderr


CHECKS = {
    "determinism": check_determinism,
    "outputs": check_outputs,
    "graphviz": check_graphviz,
    "command_line": check_command_line,
    "bad_data": check_bad_data,
}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in CHECKS:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tapegrad_simclr_") as folder:
        return CHECKS[sys.argv[1]](sys.argv[2], Path(folder)) or 0


if __name__ == "__main__":
    sys.exit(main())

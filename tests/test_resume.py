"""Every trainer is resumable: killed with SIGKILL mid-epoch, a run resumes from its newest
checkpoint and ends with the weights of an uninterrupted run; a checkpoint is never half-written;
two processes under ``accelerate launch`` train what one does."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from aigi.training.checkpoint import CheckpointError, Checkpoints, load_checkpoint

TINY = "random:tiny-clip@0"
# deterministic CPU settings: one thread, so no reduction order depends on scheduling
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _recipe(tiny_data: Path, out: Path, kind: str) -> dict:
    base = {"backbone": TINY, "output": str(out),
            "data": {"train": str(tiny_data / "train"), "val": str(tiny_data / "val")},
            "train": {"batch_size": 8, "lr": 1e-3, "checkpoint_every": 1, "keep_checkpoints": 3}}
    kinds = {
        # the features trainer: a probe on cached embeddings, many quick epochs
        "features": {"detector": "univfd", "train": {"epochs": 150}},
        # the pixels trainer: MoLE through the backbone, with augmentation drawn per (seed, epoch, image)
        "pixels": {"detector": "mole", "params": {"adapted_blocks": 1, "shared_rank": 2, "expert_ranks": [2, 4]},
                   "train": {"epochs": 6, "from_pixels": True}, "augment": {"blur_prob": 0.5}},
        # FeatDistill's two stages, the CRD queue and momentum teacher included
        "two_stage": {"detector": "featdistill",
                      "params": {"tune": "full", "tuned_blocks": 1, "stage1_epochs": 2, "distill": "crd",
                                 "crd": {"queue": 16, "dim": 8, "hidden": 16}},
                      "train": {"epochs": 5}},
        # a probe trained through the backbone: every loss term is a mean over images
        "probe-pixels": {"detector": "univfd", "train": {"epochs": 2, "from_pixels": True}, "augment": {"blur_prob": 0.5}},
        "dgs": {"detector": "dgs", "params": {"text_backbone": "random:tiny-clip-text", "lora_rank": 2},
                "train": {"epochs": 5}},
    }
    extra = kinds[kind]
    return {**base, **{k: v for k, v in extra.items() if k != "train"},
            "train": {**base["train"], **extra["train"]}}


def _write(recipe: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def _aigi(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aigi", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "detector" / "model.safetensors"))


def _kill_after_a_mid_epoch_checkpoint(proc: subprocess.Popen, ckpt: Path, deadline: float = 240.0) -> dict:
    """SIGKILL ``proc`` as soon as a checkpoint taken inside an epoch (after epoch 1) exists."""
    t0 = time.time()
    while time.time() - t0 < deadline:
        latest = Checkpoints(ckpt).latest() if ckpt.is_dir() else None
        if latest is not None:
            try:
                meta = json.loads((latest / "state.json").read_text())
            except (OSError, ValueError):  # renamed away by the next save: look again
                meta = {}
            if meta.get("batch", 0) > 0 and meta.get("epoch", 0) >= 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return meta
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed:\n{proc.stdout.read()}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail("no mid-epoch checkpoint appeared")


@pytest.mark.parametrize("kind", ["features", "pixels", "two_stage", "dgs"])
def test_a_killed_run_resumes_to_the_weights_of_an_uninterrupted_one(tiny_data, tmp_path, kind):
    straight = tmp_path / "straight"
    ref = _aigi("train", str(_write(_recipe(tiny_data, straight, kind), tmp_path / "a.yaml")))
    assert ref.wait() == 0, ref.stdout.read()

    cut = tmp_path / "cut"
    recipe = _write(_recipe(tiny_data, cut, kind), tmp_path / "b.yaml")
    proc = _aigi("train", str(recipe))
    _kill_after_a_mid_epoch_checkpoint(proc, cut / "checkpoint")
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "detector").exists()
    # whatever moment the kill landed on, every step folder is whole and loadable
    steps = sorted((cut / "checkpoint").glob("step-*[0-9]"))
    assert 1 <= len(steps) <= 3 + 1  # keep_checkpoints = 3 (a fourth only while a save is under way)
    for folder in steps:
        tensors, meta = load_checkpoint(folder)
        assert meta["step"] >= 1 and any(k.startswith("model.") for k in tensors)

    resumed = _aigi("train", str(recipe), "--resume")
    out, _ = resumed.communicate()
    assert resumed.returncode == 0, out
    assert "resumed from" in (cut / "train.log").read_text()
    a, b = _weights(straight), _weights(cut)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    history_a = json.loads((straight / "metrics.json").read_text())["history"]
    history_b = json.loads((cut / "metrics.json").read_text())["history"]
    assert [r["epoch"] for r in history_b] == [r["epoch"] for r in history_a]
    assert [r["val_ap"] for r in history_b] == pytest.approx([r["val_ap"] for r in history_a], abs=1e-6)


def test_a_save_killed_half_way_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    from aigi.training import checkpoint

    series = Checkpoints(tmp_path / "checkpoint", keep=2)
    for step in (1, 2, 3):
        series.save(step, {"w": torch.full((3,), float(step))}, {"step": step})
    assert [p.name for p in sorted((tmp_path / "checkpoint").iterdir())] == ["step-000000002", "step-000000003"]

    def dies_half_way(tensors, filename, *a, **kw):
        Path(filename).write_bytes(b"\x00" * 7)  # a torn file, then the process is gone
        raise SystemExit("killed")

    monkeypatch.setattr(checkpoint, "save_file", dies_half_way)
    with pytest.raises(SystemExit):
        series.save(4, {"w": torch.zeros(3)}, {"step": 4})
    monkeypatch.undo()
    assert (tmp_path / "checkpoint" / "step-000000004.tmp").is_dir()  # the torn write stays in its temp folder
    tensors, meta = series.load()
    assert meta["step"] == 3 and torch.equal(tensors["w"], torch.full((3,), 3.0))
    series.save(5, {"w": torch.ones(3)}, {"step": 5})  # the next save clears the torn one away
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == ["step-000000003", "step-000000005"]


def test_no_checkpoint_and_an_unreadable_one_are_one_line_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint to resume from"):
        Checkpoints(tmp_path / "none").load()
    bad = tmp_path / "c" / "step-000000002"
    bad.mkdir(parents=True)
    (bad / "state.json").write_text("{")
    with pytest.raises(CheckpointError, match=r"step-000000002: unreadable checkpoint"):
        Checkpoints(tmp_path / "c").load()


def test_gradient_accumulation_equals_one_big_batch(tiny_data, tmp_path):
    """The global batch is train.batch_size whatever grad_accum: 4 micro-batches of 2 give the weights of batches of 8."""
    import aigi

    def run(name: str, accum: int) -> dict[str, torch.Tensor]:
        recipe = _recipe(tiny_data, tmp_path / name, "features")
        recipe["train"].update(epochs=3, grad_accum=accum, checkpoint_every=0)
        return _weights(aigi.train(recipe))

    one, four = run("one", 1), run("four", 4)
    for k in one:
        torch.testing.assert_close(four[k], one[k], rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("kind,epochs", [("features", 20), ("probe-pixels", 2)])
def test_two_processes_under_accelerate_launch_train_what_one_does(tiny_data, tmp_path, kind, epochs):
    """The same global batch split over 2 gloo processes: the sharded cached rows (features) and
    the sharded data loader (pixels) both reach the single process's weights. (MoLE would not, to
    this tolerance: its load-balancing loss is computed over each process's share, as under DDP.)"""
    config = Path(__file__).parents[1] / "configs" / "accelerate" / "cpu-2-processes.yaml"
    recipe = _recipe(tiny_data, tmp_path / "two", kind)
    recipe["train"].update(epochs=epochs, checkpoint_every=0)
    one = _aigi("train", str(_write({**recipe, "output": str(tmp_path / "one")}, tmp_path / "one.yaml")))
    assert one.wait() == 0, one.stdout.read()
    port = str(29500 + os.getpid() % 1000)
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
                          "--main_process_port", port, "--num_cpu_threads_per_process", "1",
                          "-m", "aigi", "train", str(_write(recipe, tmp_path / "two.yaml"))],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stdout + two.stderr
    log = (tmp_path / "two" / "train.log").read_text()
    assert "2 processes" in log
    assert log.count("saved ") == 1 and log.count("trainer: ") == 1  # one process wrote the run
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=k)

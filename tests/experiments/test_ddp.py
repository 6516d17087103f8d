"""Two CPU processes under torchrun (DDP, gloo) train the same model and stay in sync."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..tiny_bert import make_tiny_bert

pytestmark = pytest.mark.distributed


@pytest.mark.parametrize("method, setting", [("c3a", ["--block-size", "8"]), ("lora", ["--rank", "2"])])
def test_two_processes_stay_in_sync(tmp_path, method, setting):
    torchrun = Path(sys.executable).parent / "torchrun"
    assert torchrun.exists(), f"torchrun not found next to {sys.executable}"
    model_dir = make_tiny_bert(tmp_path / "tiny_bert")
    out = tmp_path / "ddp.json"
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "c3a_tutorial.finetune"]
    command += ["--model", str(model_dir), "--method", method, *setting, "--epochs", "1", "--max-steps", "4"]
    command += ["--train-size", "128", "--eval-size", "16", "--max-length", "16", "--batch-size", "8"]
    command += ["--device", "cpu", "--no-progress", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert record["world_size"] == 2 and record["steps"] == 4 and len(record["loss_curve"]) == 4
    checksums = record["rank_checksums"]
    # Each rank summed its own trainable parameters after training on different halves of every batch:
    # equal sums mean the gradient all-reduce kept the replicas identical.
    assert len(checksums) == 2 and checksums[0] == checksums[1], checksums
    # Only rank 0 prints the record.
    assert done.stdout.count('"world_size": 2') == 1

"""`vsplade-train captions | merge-captions | train` through the CLI (typer runner, in process)."""

import json

import datasets
import pytest
from typer.testing import CliRunner

from vsplade_training.cli import app

from fixtures_train import image_dataset_dir, make_image_rows, tiny_backbone, tiny_vlm_dir  # noqa: F401

runner = CliRunner()


@pytest.mark.slow  # captions, merge and a training run end to end: make test only
def test_captions_then_merge_then_train_cli(tmp_path, tiny_vlm_dir, tiny_backbone):
    ds_dir = tmp_path / "raw"
    datasets.Dataset.from_dict(make_image_rows(8, with_captions=False)).save_to_disk(str(ds_dir))
    caps = tmp_path / "caps"
    r = runner.invoke(app, ["captions", str(ds_dir), "--out", str(caps), "--backend", "transformers", "--model",
                            str(tiny_vlm_dir), "--device", "cpu", "--max-new-tokens", "4", "--batch-size", "4",
                            "--num-shards", "2", "--shard-id", "0"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["written"] == 4 and summary["rows"] == [0, 4]
    # shard 1 not captioned yet: merge reports the 4 missing rows and exits 1
    merged = tmp_path / "merged"
    r = runner.invoke(app, ["merge-captions", str(ds_dir), str(caps), "--out", str(merged)])
    assert r.exit_code == 1, r.output
    rep = json.loads((merged / "merge_report.json").read_text())
    assert rep["missing"] == 4 and rep["missing_indices"] == [4, 5, 6, 7]
    r = runner.invoke(app, ["captions", str(ds_dir), "--out", str(caps), "--backend", "transformers", "--model",
                            str(tiny_vlm_dir), "--device", "cpu", "--max-new-tokens", "4", "--num-shards", "2",
                            "--shard-id", "1"])
    assert r.exit_code == 0, r.output
    merged2 = tmp_path / "merged2"
    r = runner.invoke(app, ["merge-captions", str(ds_dir), str(caps), "--out", str(merged2)])
    assert r.exit_code == 0, r.output
    assert datasets.load_from_disk(str(merged2))["caption"][7] is not None
    # two training steps from the CLI, then the export exists and loads
    out = tmp_path / "run"
    sets = ["per_device_batch_size=2", "gradient_accumulation_steps=1", "max_steps=2", "bf16=false",
            "gradient_checkpointing=true", "optim=adamw_torch", "dataloader_num_workers=0", "lora_r=4", "lora_alpha=4",
            "image_longest_edge=64", "max_caption_tokens=32", "logging_steps=1"]
    args = ["train", "--recipe", "efficient", "--dataset", str(merged2), "--model", str(tiny_backbone),
            "--output-dir", str(out)]
    for s in sets:
        args += ["--set", s]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (out / "export" / "model.safetensors").is_file() and (out / "export" / "bundle" / "vsplade.json").is_file()
    assert json.loads((out / "train_config.json").read_text())["flops_weight"] == 0.03
    from vsplade.encoders.neural.checkpoint import load_checkpoint

    load_checkpoint(str(out / "export"))
    # a bad recipe key is a usage error (exit 2) naming the key
    r = runner.invoke(app, ["train", "--dataset", str(merged2), "--model", str(tiny_backbone), "--set", "nope=1"])
    assert r.exit_code == 2 and "nope" in r.output


def test_vsplade_train_help_version_and_one_line_usage_errors():
    """Before: -h and --version were usage errors printed in a box."""
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "-c", "from vsplade_training.cli import main; main()", *args],
                              capture_output=True, text=True, timeout=120)

    assert run("-h").returncode == 0 and "Train, caption and evaluate" in run("-h").stdout
    v = run("--version")
    assert v.returncode == 0 and v.stdout.strip() == "0.1.0"
    bad = run("bogus")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: No such command 'bogus'. (see 'vsplade-train --help')"]

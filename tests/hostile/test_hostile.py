"""m2pt used by a careless or hostile user: one test per case of issue 9.

Each test asserts the message the user gets and that nothing was lost (files intact, no
half-written output, no run silently mixed or restarted). Everything runs on real components:
real processes for locks and SIGKILL, a real full filesystem (a small tmpfs) for disk full.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import m2pt
from m2pt.cli import main
from m2pt.io import load_tensor_file, save_safetensors
from m2pt.pathway import PathwayError
from m2pt.train.config import TrainConfig
from m2pt.train.finetuning import finetune
from m2pt.train.state import load_training_state

from .conftest import TINY_MODEL, tiny_run

REPO = Path(__file__).resolve().parents[2]
TINY_CLI = ["--model-override", "embed_dim=32", "--model-override", "depth=2", "--model-override", "num_heads=2",
            "--data-option", "train_size=32", "--data-option", "test_size=16", "--batch-size", "8", "--epochs", "1",
            "--quiet"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".m2pt.lock"}


def _tiny_vit(seed: int = 0):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(seed)
    return VisionTransformer(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, num_classes=5)


# ---------------------------------------------------------------- silent wrong results

SPOKEN = {"train_size": 30, "test_size": 20}


def _spoken_digits_csv(folder: Path, split: str = "train") -> tuple[Path, list[Path]]:
    """Built-in spoken-digit clips as a user's CSV list (absolute paths, word labels)."""
    from m2pt.data import SpokenWordsDataset

    builtin = SpokenWordsDataset(split, **SPOKEN)
    rows = list(csv.DictReader(open(builtin.list_file)))
    files = [builtin.list_file.parent / row["path"] for row in rows]
    listing = folder / f"{split}_clips.csv"
    with open(listing, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label"])
        writer.writerows([str(path), row["label"]] for path, row in zip(files, rows))
    return listing, files


def test_01_exported_model_knows_its_classes_and_input(tmp_path, capsys):
    # 30 clips learnt to about 70 % top-1 in ~5 s: a label mix-up would show as a large drop
    config = TrainConfig(modality="audio", preset="tiny", model_overrides=dict(TINY_MODEL), data_options=SPOKEN,
                         output=str(tmp_path / "run"), epochs=40, batch_size=10, lr=5e-3, warmup_epochs=1,
                         eval_every=0, cache_data=True, seed=0)
    finetune(config, quiet=True)
    model_file = tmp_path / "run" / "model.safetensors"
    model = m2pt.checkpoints.load_model(model_file).eval()
    from m2pt.train.data import build_split
    from m2pt.train.finetuning import evaluate_model

    builtin_train = build_split(config, "train")
    reference = evaluate_model(model, builtin_train, torch.device("cpu"))
    assert reference["top1"] > 40
    listing, files = _spoken_digits_csv(tmp_path)

    # the CSV orders classes alphabetically; the model's order is zero..nine: matched by name
    capsys.readouterr()
    assert main(["evaluate", str(model_file), "--data", str(listing)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["top1"] == pytest.approx(reference["top1"])
    assert metrics["test_loss"] == pytest.approx(reference["test_loss"], rel=1e-4)

    # predict: top-k class names per file, through the pipeline recorded in the model file
    assert main(["predict", str(model_file), *map(str, files[:4]), "--top-k", "3"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert model.m2pt_classes[:3] == ["zero", "one", "two"] and model.m2pt_input["modality"] == "audio"
    assert model.m2pt_input["clip_seconds"] == 1.0 and model.m2pt_input["num_mel_bins"] == 128
    for i, prediction in enumerate(predictions):
        assert prediction["file"] == str(files[i]) and len(prediction["top"]) == 3
        with torch.no_grad():
            probabilities = model(builtin_train[i][0][None]).softmax(-1)[0]
        assert prediction["top"][0]["class"] == model.m2pt_classes[int(probabilities.argmax())]
        assert prediction["top"][0]["probability"] == pytest.approx(float(probabilities.max()), abs=1e-5)

    # a class list from the command line is a list of names, not of characters
    from m2pt.data import AudioListDataset

    words = "zero,one,two,three,four,five,six,seven,eight,nine"
    assert AudioListDataset(listing, clip_seconds=1.0, classes=words).classes == words.split(",")

    # a dataset with a class the model does not know is refused, by name
    rows = listing.read_text().splitlines()
    (tmp_path / "odd.csv").write_text("\n".join(rows[:3] + [rows[3].rsplit(",", 1)[0] + ",eleven"]) + "\n")
    assert main(["evaluate", str(model_file), "--data", str(tmp_path / "odd.csv")]) == 2
    assert "classes the model was not trained on: ['eleven']" in _error(capsys)


def test_02_a_single_list_file_is_not_also_the_test_set(tmp_path, capsys):
    listing, _ = _spoken_digits_csv(tmp_path)
    run = tmp_path / "run"
    assert main(["finetune", "--modality", "audio", "--data", str(listing), "--output", str(run), *TINY_CLI]) == 2
    err = _error(capsys)
    assert "is a single list file: it would be both the training and the test set" in err and "--test-data" in err
    assert not (run / "checkpoint.pt").exists() and not (run / "final_metrics.json").exists()
    assert main(["finetune", "--modality", "audio", "--data", str(listing), "--test-data", str(listing),
                 "--output", str(run), *TINY_CLI]) == 2
    assert "--test-data is the same file as --data" in _error(capsys)


def test_03_16bit_png_is_scaled_not_clipped(tmp_path):
    from m2pt.data import ImageFolderDataset

    for split in ("train", "test"):
        (tmp_path / split / "grey").mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / split / "grey" / "a.png")
    dataset = ImageFolderDataset(tmp_path, "train", image_size=8, channels=1, mean=[0.0], std=[1.0])
    assert Image.open(tmp_path / "train" / "grey" / "a.png").mode == "I;16"
    assert dataset[0][0].mean().item() == pytest.approx(40000 / 65535, abs=1e-6)
    rgb = ImageFolderDataset(tmp_path, "train", image_size=4, channels=3, mean=[0.0] * 3, std=[1.0] * 3)
    assert rgb[0][0].shape == (3, 4, 4) and rgb[0][0].mean().item() == pytest.approx(40000 / 65535, abs=1e-6)


def test_04_resume_uses_the_folder_given_and_refuses_changes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not finetune(tiny_run(Path("original"), interrupt_at_step=3), quiet=True)["finished"]
    os.rename(tmp_path / "original", tmp_path / "moved")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    moved = str(tmp_path / "moved")

    before = _snapshot(tmp_path / "moved")
    assert main(["finetune", "--output", moved, "--resume", "--lr", "0.1", "--modality", "audio", "--quiet"]) == 2
    err = _error(capsys)
    assert "--lr, --modality would change it" in err
    assert _snapshot(tmp_path / "moved") == before

    assert main(["finetune", "--output", moved, "--resume", "--epochs", "3", "--quiet"]) == 0
    assert not (tmp_path / "original").exists() and not (elsewhere / "original").exists()
    final = json.loads((tmp_path / "moved" / "final_metrics.json").read_text())
    assert final["epoch"] == 3 and final["step"] == 18
    assert "resumed with changed options: epochs 2 -> 3" in (tmp_path / "moved" / "train.log").read_text()
    assert json.loads((tmp_path / "moved" / "config.json").read_text())["epochs"] == 3


def test_05_epoch_metrics_after_a_mid_epoch_resume_cover_the_whole_epoch(tmp_path):
    straight = finetune(tiny_run(tmp_path / "straight", epochs=1), quiet=True)
    cut = tiny_run(tmp_path / "cut", epochs=1, interrupt_at_step=4)  # 6 steps per epoch
    assert not finetune(cut, quiet=True)["finished"]
    resumed = finetune(cut.replace(interrupt_at_step=None), resume=True, quiet=True)
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-6)


def test_06_add_pathways_twice_or_inside_ddp_is_refused(tmp_path):
    target = _tiny_vit(0)
    m2pt.add_pathways(target, _tiny_vit(1))
    parameters = sum(p.numel() for p in target.parameters())
    with pytest.raises(PathwayError, match=r"already has pathways \(8 layers.*stack a second set"):
        m2pt.add_pathways(target, _tiny_vit(2))
    assert sum(p.numel() for p in target.parameters()) == parameters

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        plain = _tiny_vit(0)
        ddp = torch.nn.parallel.DistributedDataParallel(plain)
        with pytest.raises(PathwayError, match="inside a DistributedDataParallel.*would never all-reduce"):
            m2pt.add_pathways(ddp.module, _tiny_vit(1))
        assert not m2pt.has_pathways(plain)
        del ddp
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("value", ["-3", "0"])
def test_07_max_train_batches_below_one_is_refused(tmp_path, capsys, value):
    assert main(["finetune", "--output", str(tmp_path / "run"), "--max-train-batches", value, *TINY_CLI]) == 2
    assert f"max_train_batches must be a whole number of at least 1 (or unset), got {value}" in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_08_per_channel_scale_with_aux_bias_trains(tmp_path):
    from m2pt.pathway.layer import add_scaled

    model = m2pt.add_pathways(_tiny_vit(0), _tiny_vit(1), aux_bias=True, scale_shape="channel", scale_init=0.1)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    scale = model.blocks[0].attn.qkv.parametrizations.weight[0].scale
    assert scale.grad is not None and scale.grad.shape == scale.shape == (96, 1)
    generator = torch.Generator().manual_seed(0)
    bias, aux = (torch.randn(5, dtype=torch.float64, generator=generator, requires_grad=True) for _ in range(2))
    one_d = torch.randn(5, dtype=torch.float64, generator=generator, requires_grad=True)
    torch.autograd.gradcheck(add_scaled, (bias, one_d, aux))


# ---------------------------------------------------------------- data lost

def test_09_a_second_run_into_a_locked_folder_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from m2pt.train.run_lock import "
         "RunFolderLock; lock = RunFolderLock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(60)",
         str(run)], cwd=REPO, env=_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["finetune", "--output", str(run), *TINY_CLI]) == 2
        err = _error(capsys)
        assert f"run folder {run} is in use by another m2pt process (pid {holder.pid} on" in err
        assert sorted(p.name for p in run.iterdir()) == [".m2pt.lock"]
    finally:
        holder.kill()
        holder.wait()
    assert main(["finetune", "--output", str(run), *TINY_CLI]) == 0  # the kernel freed the lock


def test_10_resume_with_overwrite_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", "--output", str(run), *TINY_CLI]) == 0
    before = _snapshot(run)
    assert main(["finetune", "--output", str(run), "--resume", "--overwrite", "--quiet"]) == 2
    assert "--resume and --overwrite together" in _error(capsys)
    assert _snapshot(run) == before
    with pytest.raises(m2pt.train.run_dir.RunFolderError, match="Pass only one"):
        finetune(tiny_run(run), resume=True, overwrite=True, quiet=True)
    assert _snapshot(run) == before


def test_11_merge_refuses_to_overwrite(tmp_path, capsys, aux_file):
    run = tmp_path / "run"
    assert main(["finetune", "--output", str(run), "--aux", str(aux_file), *TINY_CLI]) == 0
    before = _snapshot(run)
    assert main(["merge", str(run), str(run / "pathways.safetensors"), "--overwrite"]) == 2
    assert "which the merge reads" in _error(capsys)
    assert main(["merge", str(run), str(run / "model.safetensors")]) == 2
    assert "already exist(s); pass --overwrite" in _error(capsys)
    assert _snapshot(run) == before
    assert main(["merge", str(run), str(run / "model.safetensors"), "--overwrite"]) == 0
    merged = m2pt.checkpoints.load_model(run / "model.safetensors")
    assert merged.m2pt_classes[0] == "T-shirt/top" and merged.m2pt_input["image_size"] == 28


# ---------------------------------------------------------------- raw tracebacks

class _Payload:
    """Pickled, this would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickle"])
def test_12_info_and_merge_on_broken_files(tmp_path, capsys, kind):
    good = tmp_path / "good.safetensors"
    save_safetensors({"blocks.0.attn.qkv.weight": torch.zeros(96, 32)}, good)
    marker = tmp_path / "code-was-executed"
    files = {
        "empty": [tmp_path / "a.safetensors", tmp_path / "a.pth"],
        "truncated": [tmp_path / "t.safetensors", tmp_path / "t.pth"],
        "text": [tmp_path / "x.safetensors", tmp_path / "x.pth"],
        "pickle": [tmp_path / "p.pth", tmp_path / "p.safetensors"],
    }[kind]
    for path in files:
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            torch.save({"w": torch.zeros(1000)}, tmp_path / "full.pth")
            source = good if path.suffix == ".safetensors" else tmp_path / "full.pth"
            path.write_bytes(source.read_bytes()[:200])
        elif kind == "text":
            path.write_text("model weights, honest\n")
        else:
            path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    for path in files:
        capsys.readouterr()
        assert main(["info", str(path)]) == 2
        err = _error(capsys)
        assert str(path) in err and "weights_only=False" not in err
        assert main(["merge", str(path), str(tmp_path / "out.safetensors")]) == 2
        err = _error(capsys)
        assert str(path) in err and "weights_only=False" not in err
        assert not (tmp_path / "out.safetensors").exists()
    assert not marker.exists()


def test_13_nonfinite_auxiliary_weights_are_named(aux_file):
    aux = _tiny_vit(1)
    with torch.no_grad():
        aux.blocks[1].mlp.fc1.weight[0, 0] = float("nan")
        aux.blocks[0].attn.proj.weight[3, 1] = float("inf")
    target = _tiny_vit(0)
    with pytest.raises(PathwayError, match=r"non-finite.*2 tensor\(s\).*blocks.0.attn.proj.weight.*blocks.1.mlp.fc1"):
        m2pt.add_pathways(target, aux)
    assert not m2pt.has_pathways(target)


@pytest.fixture
def small_filesystem(tmp_path):
    """A real 512 KiB tmpfs (needs root and mount rights; skipped where they are missing)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: a failed test may leave a file open


def test_14_disk_full_during_a_checkpoint(small_filesystem, capsys):
    run = small_filesystem / "run"
    assert not finetune(tiny_run(run, epochs=3, interrupt_at_step=2,
                                 data_options={"train_size": 32, "test_size": 16}), quiet=True)["finished"]
    previous = (run / "checkpoint.pt").read_bytes()
    free = os.statvfs(small_filesystem).f_bavail * os.statvfs(small_filesystem).f_frsize
    (small_filesystem / "filler").write_bytes(b"\0" * max(0, free - 16 * 1024))  # room for logs, not a checkpoint
    assert main(["finetune", "--output", str(run), "--resume", "--quiet"]) == 2
    err = _error(capsys)
    assert f"no space left on {run} while writing checkpoint.pt; the previous checkpoint.pt is kept" in err
    assert "no space left on" in (run / "train.log").read_text()
    assert (run / "checkpoint.pt").read_bytes() == previous and not list(run.glob(".*.tmp"))
    assert load_training_state(run / "checkpoint.pt")["step"] == 2


def test_15_bad_model_override_and_data_option(tmp_path, capsys):
    assert main(["finetune", "--output", str(tmp_path / "a"), "--model-override", "depth=abc", "--quiet"]) == 2
    assert "model override depth='abc' must be a whole number (the preset uses 6)" in _error(capsys)
    assert main(["finetune", "--output", str(tmp_path / "b"), "--data-option", "bogus=1", "--quiet"]) == 2
    err = _error(capsys)
    assert "unknown data option(s) bogus for the built-in image dataset; accepted options:" in err
    assert "train_size" in err and "image_size" in err
    for name in ("a", "b"):
        assert not (tmp_path / name / "checkpoint.pt").exists()


def test_16_a_nan_point_cloud_is_a_bad_item(tmp_path, caplog):
    import h5py

    from m2pt.data import ScanObjectNNDataset

    clouds = np.random.default_rng(0).normal(size=(30, 64, 3)).astype(np.float32)
    clouds[7, 5] = np.nan
    with h5py.File(tmp_path / "training_objectdataset.h5", "w") as f:
        f["data"] = clouds
        f["label"] = np.arange(30) % 15
    dataset = ScanObjectNNDataset(tmp_path / "training_objectdataset.h5", num_points=32)
    with caplog.at_level("WARNING"):
        points, label = dataset[7]
    assert label == 8 and bool(torch.isfinite(points).all())
    assert dataset.tracker.bad_paths == [f"{tmp_path / 'training_objectdataset.h5'}#7"]
    assert "skipping unreadable file" in caplog.text and "#7 (ValueError: non-finite coordinates)" in caplog.text


# ---------------------------------------------------------------- smaller

def test_17_stale_temporary_files_are_removed(tmp_path):
    run = tmp_path / "run"
    assert not finetune(tiny_run(run, interrupt_at_step=2), quiet=True)["finished"]
    stale = run / ".checkpoint.pt.3f2a9c1d.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert finetune(tiny_run(run), resume=True, quiet=True)["finished"]
    assert not stale.exists() and not list(run.glob(".*.tmp"))


def _image_folder(root: Path, size: int, per_class: int, corrupt: int = 0) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    for i in range(corrupt):
        (root / "train" / "cat" / f"{i}.png").write_bytes(b"not a png")


def test_18_skipped_files_reach_the_log_and_final_metrics(tmp_path):
    _image_folder(tmp_path / "images", 12, per_class=12, corrupt=1)  # 1 of 24 training images
    config = tiny_run(tmp_path / "run", data=str(tmp_path / "images"), data_options={}, epochs=1)
    final = finetune(config, quiet=True)
    bad = str(tmp_path / "images" / "train" / "cat" / "0.png")
    assert final["skipped_files_train"] == 1 and final["skipped_paths_train"] == [bad]
    assert final["skipped_files_test"] == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert "skipping unreadable file" in log and bad in log


def test_19_atomic_files_follow_the_umask(tmp_path):
    for umask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(umask)
        try:
            path = save_safetensors({"w": torch.zeros(2)}, tmp_path / f"w{umask:o}.safetensors")
        finally:
            os.umask(old)
        assert path.stat().st_mode & 0o777 == mode


def test_20_image_folder_with_the_default_recipe(tmp_path, capsys):
    _image_folder(tmp_path / "images", 40, per_class=8)  # RGB 40x40; the cpu recipe's model takes grey 28x28
    run = tmp_path / "run"
    base = ["finetune", "--data", str(tmp_path / "images"), "--model-override", "embed_dim=32",
            "--model-override", "depth=2", "--model-override", "num_heads=2", "--batch-size", "8", "--epochs", "1",
            "--quiet"]
    assert main(base + ["--output", str(run)]) == 0
    assert json.loads((run / "model.json").read_text())["input"]["image_size"] == 28
    assert main(base + ["--output", str(tmp_path / "other"), "--data-option", "image_size=40"]) == 2
    assert ("--data-option image_size=40 gives inputs the image model does not take (img_size=28" in
            _error(capsys))


def test_21_save_every_steps_survives_sigkill(tmp_path):
    config = tiny_run(tmp_path / "run", epochs=1, eval_every=0, save_every_steps=3,
                      data_options={"train_size": 480, "test_size": 16})  # 60 steps
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config.to_dict()))
    process = subprocess.Popen([sys.executable, str(REPO / "tests" / "train" / "finetune_worker.py"),
                                str(config_file)], cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not checkpoint.is_file():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    state = load_training_state(checkpoint)
    assert state["epoch"] == 0 and state["step"] % 3 == 0 and 0 < state["batch_in_epoch"] < 60
    resumed = finetune(config, resume=True, quiet=True)
    straight = finetune(config.replace(output=str(tmp_path / "straight")), quiet=True)
    assert resumed["finished"] and resumed["step"] == straight["step"] == 60
    a, b = load_tensor_file(tmp_path / "run" / "model.safetensors"), load_tensor_file(tmp_path / "straight" /
                                                                                      "model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=0, rtol=0)


def test_22_a_metrics_line_cut_short_does_not_block_resume(tmp_path):
    run = tmp_path / "run"
    assert not finetune(tiny_run(run, interrupt_at_step=3), quiet=True)["finished"]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "loss": 2.3')  # what SIGKILL or a full disk can leave
    assert finetune(tiny_run(run), resume=True, quiet=True)["finished"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and steps[-1] == 12

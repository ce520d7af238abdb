"""The runner on tiny budgets: pretraining, random control, rows, skip-finished, resume, failures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from m2pt.experiments.arms import BASELINE, Arm
from m2pt.experiments.plan import PretrainSpec, RunSpec
from m2pt.experiments.records import LAMBDA_HISTORY_POINTS, read_rows, run_history
from m2pt.experiments.reproduce import aggregate
from m2pt.experiments.runner import PretrainingChanged, Runner, RunnerOptions, RunInterrupted, execute

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
DATA = {"train_size": 48, "test_size": 16}
FINETUNE = dict(task="finetune", modality="image", preset="tiny", model_overrides=TINY, data_options=DATA,
                epochs=2, batch_size=8, lr=2e-3, warmup_epochs=0.5, eval_every=1, amp=False, device="cpu")
PRETRAIN = {**FINETUNE, "task": "pretrain", "epochs": 1, "eval_every": 0, "decoder_dim": 16, "decoder_depth": 1}


def _runs(seed: int = 0, **changes) -> list[RunSpec]:
    options = {**FINETUNE, **changes}
    aux = Arm("aux-image", "mae:image")
    control = Arm("random-image", "random:mae:image")
    return [RunSpec("scratch", "image", arm, seed, dict(options)) for arm in (BASELINE, aux, control)]


@pytest.fixture
def runner(tmp_path):
    return Runner(RunnerOptions(output=tmp_path / "out", log=lambda message: None))


def test_runs_then_skips_finished_runs(runner):
    pretrain = [PretrainSpec("mae:image", dict(PRETRAIN))]
    counts = execute(runner, pretrain, _runs(), progress=False)
    assert counts == {"done": 4, "skipped": 0, "failed": 0}
    rows = read_rows(runner.results_path)
    assert [r["arm"] for r in rows] == ["baseline", "aux-image", "random-image"]
    aux_row, control_row = rows[1], rows[2]
    assert aux_row["pathway_stats"]["abs_lambda_mean"] > 0
    assert set(aux_row["pathway_stats"]["layers"]) == {f"blocks.{b}.{n}" for b in range(2)
                                                       for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")}
    assert 0 < aux_row["pathway_stats"]["rel_delta_mean"] < 1
    assert rows[0]["pathway_stats"] == {} and rows[0]["metrics"]["top1"] >= 0
    assert control_row["aux_path"].endswith("random/mae-image-seed0.safetensors")
    assert aux_row["aux_sha256"] == hashlib.sha256(runner.encoder_path("mae:image").read_bytes()).hexdigest()[:16]
    assert control_row["aux_sha256"] not in (None, aux_row["aux_sha256"]) and rows[0]["aux_sha256"] is None
    assert control_row["pretrained_sha256"] == aux_row["pretrained_sha256"] == aux_row["aux_sha256"]
    assert rows[0]["pretrained_sha256"] is None
    assert not (runner.run_folder(_runs()[1]) / "checkpoint.pt").exists()  # heavy files removed
    assert (runner.run_folder(_runs()[1]) / "metrics.jsonl").is_file()

    again = execute(runner, pretrain, _runs(), progress=False)
    assert again == {"done": 0, "skipped": 3, "failed": 0}
    assert len(read_rows(runner.results_path)) == 3

    changed = _runs(epochs=1)  # another budget: not the same runs any more
    assert execute(runner, pretrain, changed[:1], progress=False)["done"] == 1
    assert read_rows(runner.results_path)[-1]["metrics"]["step"] == 6

    written = aggregate(runner.output, log=lambda m: None)
    assert (runner.output / "summary.md").is_file() and (runner.output / "summary.csv").is_file()
    assert any(p.name.startswith("heatmap_") for p in written)


def test_rows_keep_the_history_that_figures_need_once_the_run_folders_are_gone(runner):
    assert execute(runner, [PretrainSpec("mae:image", dict(PRETRAIN))], _runs()[:2], progress=False)["done"] == 3
    baseline_row, aux_row = read_rows(runner.results_path)
    history = aux_row["history"]
    assert history["metric"] == "top1" and [e for e, _, _ in history["epochs"]] == [1.0, 2.0]
    assert history["epochs"][-1][1] == pytest.approx(aux_row["metrics"]["top1"], rel=1e-4)
    assert history["epochs"][-1][2] == pytest.approx(aux_row["metrics"]["train_loss"], rel=1e-4)
    trajectory = history["lambda"]
    assert trajectory["steps"][-1] == aux_row["metrics"]["step"]
    assert set(trajectory["layers"]) == set(aux_row["pathway_stats"]["layers"])
    for layer, values in trajectory["layers"].items():
        assert len(values) == len(trajectory["steps"])
        assert values[-1] == pytest.approx(aux_row["pathway_stats"]["layers"][layer]["lambda"], rel=1e-4, abs=1e-9)
    assert "lambda" not in baseline_row["history"] and len(baseline_row["history"]["epochs"]) == 2

    for run in _runs()[:2]:
        shutil.rmtree(runner.run_folder(run))
    shutil.rmtree(runner.output / "pretrain")  # its loss curve was recorded when it finished
    written = {p.name for p in aggregate(runner.output, log=lambda m: None)}
    assert {"accuracy_main_scratch.png", "lambda_layers_main_scratch.png", "pretrain_loss.png"} <= written
    assert "| mae-image | 1 |" in (runner.output / "summary.md").read_text()


def test_lambda_history_of_a_long_run_is_thinned_to_a_fixed_size_and_ends_at_the_last_step(tmp_path):
    records = [{"step": step, "loss": 1.0, "scales": {"blocks.0.attn.qkv": step / 1000}} for step in range(1, 1001)]
    records += [{"epoch": 1, "top1": 50.0, "train_loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    trajectory = run_history(tmp_path)["lambda"]
    assert len(trajectory["steps"]) <= LAMBDA_HISTORY_POINTS and trajectory["steps"][-1] == 1000
    assert trajectory["layers"]["blocks.0.attn.qkv"] == [step / 1000 for step in trajectory["steps"]]
    assert run_history(tmp_path / "missing") == {}


def test_interrupted_run_resumes_from_its_checkpoint_and_counts_its_earlier_epochs_in_its_time(runner):
    run = _runs(interrupt_at_step=9)[0]  # 6 steps per epoch: stopped in epoch 2
    with pytest.raises(RunInterrupted):
        execute(runner, [], [run], progress=False)
    folder = runner.run_folder(run)
    assert (folder / "checkpoint.pt").is_file() and not read_rows(runner.results_path)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    epoch_one = next(r for r in records if "epoch_seconds" in r)
    epoch_one["epoch_seconds"] = 1000.0  # as if the first part had run for 1000 s
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 9, "lo')
    plain = dataclasses.replace(run, options={k: v for k, v in run.options.items() if k != "interrupt_at_step"})
    assert execute(runner, [], [plain], progress=False)["done"] == 1
    assert "resumed from" in (folder / "train.log").read_text()
    row = read_rows(runner.results_path)[0]
    assert row["metrics"]["step"] == 12
    assert 1000.0 < row["wall_seconds"] < 1000.0 + 600  # the first part's epoch and this part


def test_failure_is_recorded_and_the_next_run_goes_on(runner):
    broken = RunSpec("scratch", "image", Arm("aux-image", "mae:image"), 0, dict(FINETUNE))  # never pretrained
    counts = execute(runner, [], [broken, _runs()[0]], progress=False)
    assert counts == {"done": 1, "skipped": 0, "failed": 1}
    failure = json.loads((runner.output / "failures.jsonl").read_text().splitlines()[0])
    assert failure["run_id"] == broken.run_id and "FileNotFoundError" in failure["error"]


def test_permuted_control_runs_end_to_end(runner):
    import torch

    from m2pt.checkpoints import load_auxiliary
    from m2pt.experiments.arms import permuted_arm

    arm = permuted_arm("image")
    runs = [RunSpec("scratch", "image", BASELINE, 0, dict(FINETUNE)), RunSpec("scratch", "image", arm, 0, dict(FINETUNE))]
    counts = execute(runner, [PretrainSpec("mae:image", dict(PRETRAIN))], runs, progress=False)
    assert counts == {"done": 3, "skipped": 0, "failed": 0}
    row = {r["arm"]: r for r in read_rows(runner.results_path)}["permuted-image"]
    assert row["aux"] == "permuted:mae:image" and "/artifacts/permuted/mae-image-seed0" in row["aux_path"]
    assert row["pathway_stats"]["layers"]  # λ per layer recorded
    permuted, pretrained = (load_auxiliary(p).state_dict()
                            for p in (row["aux_path"], str(runner.encoder_path("mae:image"))))
    weight = "blocks.0.mlp.fc1.weight"
    assert not torch.equal(permuted[weight], pretrained[weight])
    assert torch.allclose(torch.linalg.svdvals(permuted[weight]), torch.linalg.svdvals(pretrained[weight]), atol=1e-5)


def test_a_pretraining_changed_after_runs_used_it_is_refused_and_nothing_is_lost(runner):
    pretrain = [PretrainSpec("mae:image", dict(PRETRAIN))]
    assert execute(runner, pretrain, _runs()[1:2], progress=False)["done"] == 2  # pretraining + aux-image
    encoder = runner.encoder_path("mae:image").read_bytes()
    rows = read_rows(runner.results_path)
    longer = [PretrainSpec("mae:image", {**PRETRAIN, "epochs": 2})]
    with pytest.raises(PretrainingChanged, match=r"pretraining mae:image in .* other options than the plan's "
                                                 r"\(epochs 1 -> 2\), and 1 finished run\(s\) used its encoder "
                                                 r"\(first: scratch/image/aux-image/seed0\).* new --output"):
        execute(runner, longer, _runs()[1:2], progress=False)
    assert runner.encoder_path("mae:image").read_bytes() == encoder and read_rows(runner.results_path) == rows


def test_a_pretraining_no_run_used_yet_is_redone_and_its_controls_follow(runner):
    pretrain = [PretrainSpec("mae:image", dict(PRETRAIN))]
    execute(runner, pretrain, [], progress=False)
    control = runner.resolve("random:mae:image", 0)
    before = load_file(control)
    execute(runner, [PretrainSpec("mae:image", {**PRETRAIN, "epochs": 2})], [], progress=False)
    assert json.loads((runner.pretrain_folder("mae:image") / "config.json").read_text())["epochs"] == 2
    after = load_file(runner.resolve("random:mae:image", 0))
    assert any(not torch.equal(before[key], after[key]) for key in before)  # drawn from the new encoder's stds
    assert load_file(runner.resolve("random:mae:image", 0)).keys() == after.keys()


def test_progress_bar_counts_down_only_with_an_estimate(runner, capsys):
    baseline = _runs()[0]
    execute(runner, [], [baseline], progress=True)
    printed = capsys.readouterr().err
    assert "1/1" in printed and "est. left" not in printed
    again = dataclasses.replace(baseline, seed=1)
    execute(runner, [], [again], estimates={again.run_id: 90.0}, progress=True)
    assert "est. left 0 min" in capsys.readouterr().err

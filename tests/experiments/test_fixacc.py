"""The fix-acc study of the converged profile: MAE's linear probe of the MAE-pretrained image target."""

from __future__ import annotations

import hashlib

import pytest
import torch
from safetensors.torch import load_file

from m2pt.experiments.arms import fixacc_arms
from m2pt.experiments.budgets import FIXACC_LINEAR_PROBE, converged_profile, gpu_profile, full_profile
from m2pt.experiments.plan import PretrainSpec, RunSpec, build_plan, lambda_lr_sums_of, merge_options, priority
from m2pt.experiments.records import read_rows
from m2pt.experiments.reproduce import aggregate
from m2pt.experiments.runner import Runner, RunnerOptions, execute

FIXACC_NAMES = ["fixacc-baseline", "fixacc-aux-point", "fixacc-aux-audio", "fixacc-aux-video",
                "fixacc-random-point", "fixacc-permuted-point"]

#: sha1 of the sorted ``run_id fingerprint`` lines of every run before the fix-acc study was added
#: (computed with the code of main at 4e61e64): adding arms must not restart finished runs.
PINNED_PLANS = {"converged": (150, "72445a253e46f2c9f86a10afb0afa8e73c33a63f"),
                "gpu": (27, "7ad8b454a0bd794c90799b0ef9da891c6eb2841b")}
#: The converged plan after its audio budget went from 24 to 48 epochs on purpose
#: (results/converged/audio-24-epochs.md), and now: its long runs (audio, video, point) warm up
#: for 5 epochs and clip gradients (results/converged/audio-48-epochs-short-warmup.md). Nothing
#: else changed (see the test below). Last, audio went from 48 to 96 epochs
#: (results/converged/audio-48-epochs.md).
CONVERGED_AUDIO_48 = (150, "54e037bccd56d528f14055c5316440bf58db8559")
CONVERGED_LONG_RUN_OPTIONS = (150, "9036dc8d5f231b4ee4986d79b961cd0390d81438")
CONVERGED_AUDIO_96 = (150, "055c0bb51b32da28ff4aa80c845c1861c545f5c4")


def _plan_digest(runs: list[RunSpec]) -> tuple[int, str]:
    """Digest of the runs that existed at the pin (arms added since then are left out)."""
    lines = [f"{r.run_id} {r.fingerprint()}" for r in sorted(runs, key=lambda r: r.run_id)
             if r.arm.group not in ("fixacc", "auxplateau")]
    return len(lines), hashlib.sha1("\n".join(lines).encode()).hexdigest()


def test_existing_runs_keep_their_fingerprints():
    assert _plan_digest(build_plan(gpu_profile())[1]) == PINNED_PLANS["gpu"]
    profile = converged_profile()
    assert _plan_digest(build_plan(profile)[1]) == CONVERGED_AUDIO_96
    assert profile.finetune["audio"]["epochs"] == 96
    profile.finetune["audio"]["epochs"] = 48  # the last change: audio's epochs (its plateau arm follows them)
    assert _plan_digest(build_plan(profile)[1]) == CONVERGED_LONG_RUN_OPTIONS
    for modality in ("audio", "video", "point"):  # the change before: the long runs' warmup and clipping
        assert profile.finetune[modality].pop("clip_grad") == 1.0
        profile.finetune[modality]["warmup_epochs"] = 0.5
    assert _plan_digest(build_plan(profile)[1]) == CONVERGED_AUDIO_48
    # before that: the audio epochs from 24 to 48
    profile.finetune["audio"]["epochs"] = 24
    assert _plan_digest(build_plan(profile)[1]) == PINNED_PLANS["converged"]


def test_converged_plans_the_fixacc_arms_on_the_mae_image_target():
    profile = converged_profile()
    pretrainings, runs = build_plan(profile)
    fixacc = [r for r in runs if r.arm.group == "fixacc"]
    assert sorted({r.arm.name for r in fixacc}) == sorted(FIXACC_NAMES)
    assert len(fixacc) == 6 * 3 and {r.seed for r in fixacc} == {0, 1, 2}
    assert {(r.setting, r.modality) for r in fixacc} == {("mae", "image")}
    assert {r.setting for r in runs if r.arm.group != "fixacc"} == {"scratch"}  # only these arms in "mae"
    assert "mae:image" in {p.source for p in pretrainings}
    by_name = {r.arm.name: r for r in fixacc if r.seed == 0}
    for name, run in by_name.items():
        assert run.init_source == "mae:image"
        o = run.options
        assert o["linear_probe"] is True and o["optimizer"] == "lars" and o["lr"] is None and o["blr"] == 0.1
        assert o["weight_decay"] == 0.0 and o["batch_size"] == 256 and o["task"] == "finetune"
        assert o["data_options"] == profile.finetune["image"]["data_options"]
        if name != "fixacc-baseline":
            assert run.arm.baseline == "fixacc-baseline"
            assert run.arm.pathway == {"train_target": False, "train_aux": False}
            assert min(lambda_lr_sums_of(run)) >= profile.min_lambda_lr_sum
    assert by_name["fixacc-baseline"].arm.aux is None and by_name["fixacc-baseline"].arm.baseline is None
    assert by_name["fixacc-aux-video"].arm.aux == "mae:video"
    assert by_name["fixacc-random-point"].arm.aux == "random:mae:point"
    assert by_name["fixacc-permuted-point"].arm.aux == "permuted:mae:point"
    assert "fixacc" in profile.lr_sum_groups


def test_fixacc_runs_right_after_tier_1():
    profile = converged_profile()
    _, runs = build_plan(profile)
    tiers = [priority(profile, r) for r in runs]
    assert tiers == sorted(tiers)
    assert {priority(profile, r) for r in runs if r.arm.group == "fixacc"} == {2}
    first = next(i for i, r in enumerate(runs) if r.arm.group == "fixacc")
    assert {priority(profile, r) for r in runs[:first]} == {0, 1}


def test_lambda_lr_sum_check_covers_the_fixacc_arms():
    profile = converged_profile()
    profile.fixacc_options = {**profile.fixacc_options, "epochs": 1, "blr": 1e-4}
    with pytest.raises(ValueError, match=r"mae/image/fixacc-aux-point/seed0"):
        build_plan(profile)


def test_fixacc_and_the_ablations_fixacc_cannot_share_a_plan():
    profile = full_profile()
    profile.fixacc_auxiliaries = ("point",)
    with pytest.raises(ValueError, match="share arm names"):
        build_plan(profile)


TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}
FINETUNE = dict(task="finetune", modality="image", preset="tiny", model_overrides=TINY,
                data_options={"train_size": 48, "test_size": 16}, epochs=2, batch_size=8, lr=2e-3, warmup_epochs=0.5,
                eval_every=1, amp=False, device="cpu")
PRETRAIN = {**FINETUNE, "task": "pretrain", "epochs": 1, "eval_every": 0, "decoder_dim": 16, "decoder_depth": 1}


def test_fixacc_run_end_to_end_trains_only_lambda_and_the_classifier(tmp_path):
    probe = {**FIXACC_LINEAR_PROBE, "batch_size": 8, "epochs": 2}
    arms = fixacc_arms(("image",), None, (), probe)
    runs = [RunSpec("mae", "image", arm, 0, merge_options(FINETUNE, arm.options)) for arm in arms]
    runner = Runner(RunnerOptions(output=tmp_path / "out", keep_heavy_files=True, log=lambda message: None))
    counts = execute(runner, [PretrainSpec("mae:image", dict(PRETRAIN))], runs, progress=False)
    assert counts == {"done": 3, "skipped": 0, "failed": 0}
    encoder = load_file(str(runner.encoder_path("mae:image")))

    baseline = load_file(str(runner.run_folder(runs[0]) / "model.safetensors"))
    # The encoder's trained final norm serves class-token pooling; the average-pooled probe gets a fresh
    # fc_norm, as MAE's main_linprobe.py --global_pool does.
    shared = {key: value for key, value in encoder.items() if not key.startswith("norm.")}
    assert set(baseline) == set(shared) | {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert torch.equal(baseline["fc_norm.weight"], torch.ones(32)) and torch.equal(baseline["fc_norm.bias"], torch.zeros(32))
    for key, value in shared.items():
        assert torch.equal(baseline[key], value), key

    folder = runner.run_folder(runs[1])
    merged, pathways = (load_file(str(folder / name)) for name in ("model.safetensors", "pathways.safetensors"))
    scales = {k: v for k, v in pathways.items() if k.endswith(".scale")}
    assert len(scales) == 2 * 4
    assert all(not torch.allclose(v, torch.full_like(v, 1e-4)) for v in scales.values())  # λ trained
    for key, value in shared.items():
        if key.endswith(".weight") and f"{key.removesuffix('.weight')}.parametrizations.weight.original" in pathways:
            prefix = key.removesuffix(".weight") + ".parametrizations.weight."
            assert torch.equal(pathways[prefix + "original"], value), key  # W frozen
            assert torch.equal(pathways[prefix + "0.aux_weight"], value), key  # W' frozen (aux = same encoder)
            assert not torch.equal(merged[key], value)  # merged W + λW'
        else:
            assert torch.equal(merged[key], value), key  # norms, embeddings, biases frozen
    assert merged["head.weight"].shape == baseline["head.weight"].shape  # BatchNorm folded into one Linear
    row = {r["arm"]: r for r in read_rows(runner.results_path)}["fixacc-aux-image"]
    assert row["group"] == "fixacc" and row["baseline_arm"] == "fixacc-baseline"
    assert row["pathway_stats"]["abs_lambda_mean"] != pytest.approx(1e-4, rel=1e-3)

    aggregate(runner.output, log=lambda message: None)
    summary = (runner.output / "summary.md").read_text()
    table = summary.split("### Fix acc", 1)[1].split("###", 1)[0]
    line = next(line for line in table.splitlines() if "| fixacc-aux-image |" in line)
    assert line.startswith("| mae | image | fixacc-aux-image | 1 |") and "| fixacc-baseline |" in table


def test_linear_probe_runs_get_their_own_step_time_calibration():
    from m2pt.experiments.estimate import calibrate, estimate_seconds

    probe = {**FIXACC_LINEAR_PROBE, "batch_size": 8, "epochs": 2}
    arms = fixacc_arms(("image",), None, (), probe)
    runs = [RunSpec("mae", "image", arm, 0, merge_options(FINETUNE, arm.options)) for arm in arms[:2]]
    runs.append(RunSpec("scratch", "image", arms[0], 0, dict(FINETUNE)))  # a plain fine-tuning, same target
    times = calibrate([], runs, log=lambda message: None)
    assert set(times) == {"finetune/image/tiny/plain/linprobe", "finetune/image/tiny/pathway/linprobe",
                          "finetune/image/tiny/plain"}
    estimates = estimate_seconds([], runs, times)
    assert set(estimates) == {r.run_id for r in runs} and all(s > 0 for s in estimates.values())

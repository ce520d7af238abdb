import math

import pytest
import torch
from torchaudio.compliance import kaldi

from m2pt.models import FbankTransform, SpecAugment, compute_fbank_stats


def kaldi_reference(waveform, num_mel_bins=128):
    waveform = waveform - waveform.mean()
    return kaldi.fbank(waveform[None], htk_compat=True, sample_frequency=16000, use_energy=False,
                       window_type="hanning", num_mel_bins=num_mel_bins, dither=0.0, frame_shift=10)


def tone(seconds=0.5, freq=440.0, rate=16000):
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * math.pi * freq * t) + 0.01 * torch.randn_like(t)


def test_matches_kaldi_fbank_and_normalises():
    waveform = tone()
    reference = kaldi_reference(waveform)  # 48 frames for 0.5 s
    transform = FbankTransform(target_length=reference.shape[0], mean=-3.0, std=2.0)
    out = transform(waveform)
    assert out.shape == (1, reference.shape[0], 128)
    torch.testing.assert_close(out[0], (reference + 3.0) / 4.0)


def test_pads_with_zeros_and_cuts():
    waveform = tone()
    reference = kaldi_reference(waveform)
    frames = reference.shape[0]
    padded = FbankTransform(target_length=frames + 10, normalize=False)(waveform)[0]
    torch.testing.assert_close(padded[:frames], reference)
    assert torch.count_nonzero(padded[frames:]) == 0
    cut = FbankTransform(target_length=frames - 8, normalize=False)(waveform)[0]
    torch.testing.assert_close(cut, reference[: frames - 8])


def test_input_layouts_and_batch():
    waveform = tone()
    transform = FbankTransform(target_length=40)
    single = transform(waveform)
    torch.testing.assert_close(transform(waveform[None]), single)
    batch = torch.stack([waveform, tone(freq=880.0)])[:, None]
    out = transform(batch)
    assert out.shape == (2, 1, 40, 128)
    torch.testing.assert_close(out[0], single)


def test_sample_rate_check_and_resample():
    waveform = tone(rate=8000)
    with pytest.raises(ValueError, match="expects audio at 16000 Hz, got 8000 Hz"):
        FbankTransform(target_length=40)(waveform, sample_rate=8000)
    out = FbankTransform(target_length=40, resample=True)(waveform, sample_rate=8000)
    assert out.shape == (1, 40, 128)


@pytest.mark.parametrize("waveform, message", [
    (torch.zeros(2, 2, 8000), "mono waveform"),
    (torch.zeros(0), "empty waveform"),
    (torch.full((8000,), float("nan")), "non-finite"),
    (torch.zeros(100), "too short"),
])
def test_bad_waveforms(waveform, message):
    with pytest.raises(ValueError, match=message):
        FbankTransform(target_length=40)(waveform)


def test_spec_augment_masks_in_training_only():
    fbank = torch.ones(4, 1, 50, 32)
    augment = SpecAugment(freq_mask_param=16, time_mask_param=20)
    torch.manual_seed(1)
    masked = augment.train()(fbank)
    assert masked.shape == fbank.shape and (masked == 0).any() and (masked == 1).any()
    # masks are whole frequency columns or time rows
    zero = masked[:, 0] == 0
    assert torch.equal(zero, zero.all(dim=1, keepdim=True) | zero.all(dim=2, keepdim=True))
    assert torch.equal(augment.eval()(fbank), fbank)
    unbatched = augment.train()(torch.ones(1, 50, 32))
    assert unbatched.shape == (1, 50, 32)


def test_spec_augment_runs_before_normalisation():
    transform = FbankTransform(target_length=40, mean=-3.0, std=2.0,
                               spec_augment=SpecAugment(freq_mask_param=128, time_mask_param=40)).train()
    torch.manual_seed(0)
    out = transform(tone())
    assert torch.isclose(out, torch.tensor(3.0 / 4.0)).any()  # a masked zero, then normalised


def test_compute_fbank_stats():
    clips = [tone(freq=300.0), tone(freq=600.0)]
    mean, std = compute_fbank_stats(clips, target_length=30)
    frames = [kaldi_reference(c)[:30] for c in clips]
    assert mean == pytest.approx(float(sum(f.mean() for f in frames) / 2), rel=1e-5)
    assert std == pytest.approx(float(sum(f.std() for f in frames) / 2), rel=1e-5)
    normalised = FbankTransform(target_length=30, mean=mean, std=std)(torch.stack(clips)[:, None])
    assert abs(float(normalised.mean())) < 1e-4

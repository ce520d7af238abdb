"""Audio front end of AST / AudioMAE: Kaldi-compatible log-mel filterbank, length fix, normalisation.

`FbankTransform` turns 16 kHz waveforms into the [1, T, F] input of `AudioTransformer`:
waveform minus its mean -> `torchaudio.compliance.kaldi.fbank` (htk_compat, 25 ms Hanning window,
10 ms shift, no energy, no dither) -> zero-pad / cut to `target_length` frames -> optional SpecAugment
(training only, before normalisation, as AST / AudioMAE) -> (x - mean) / (2 * std).
"""
from typing import Iterable, Optional, Tuple

import torch
from torch import nn
from ..optional import optional_import

__all__ = ["AUDIOSET_FBANK_MEAN", "AUDIOSET_FBANK_STD", "FbankTransform", "SpecAugment", "compute_fbank_stats"]

AUDIOSET_FBANK_MEAN = -4.2677393  # AudioMAE / AST AudioSet statistics
AUDIOSET_FBANK_STD = 4.5689974


def _torchaudio():
    """torchaudio, imported on first use: the models themselves do not need it."""
    optional_import("torchaudio.compliance.kaldi", "data", "the audio front end (FbankTransform, SpecAugment)")
    return optional_import("torchaudio", "data", "the audio front end (FbankTransform, SpecAugment)")


def _as_mono_batch(waveform: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """[S], [1, S] or [B, 1, S] -> ([B, S], whether the input was batched)."""
    if not isinstance(waveform, torch.Tensor):
        raise ValueError(f"fbank expects a waveform tensor [S], [1, S] or [B, 1, S], got {type(waveform).__name__}")
    if waveform.dim() == 1:
        return waveform[None], False
    if waveform.dim() == 2 and waveform.shape[0] == 1:
        return waveform, False
    if waveform.dim() == 3 and waveform.shape[1] == 1:
        return waveform[:, 0], True
    raise ValueError(f"fbank expects a mono waveform [S], [1, S] or [B, 1, S], got {list(waveform.shape)}")


class SpecAugment(nn.Module):
    """SpecAugment masking of fbank frames [..., T, F] (torchaudio Frequency/TimeMasking), training only.

    Args:
        freq_mask_param: Maximum width of the frequency mask (48 in AudioMAE on AudioSet).
        time_mask_param: Maximum width of the time mask (192 in AudioMAE on AudioSet for 1024 frames).
        mask_value: Value written into masked cells.
    """

    def __init__(self, freq_mask_param: int = 48, time_mask_param: int = 192, mask_value: float = 0.0) -> None:
        super().__init__()
        self.mask_value = mask_value
        torchaudio = _torchaudio()
        self.freq_masking = torchaudio.transforms.FrequencyMasking(freq_mask_param, iid_masks=True)
        self.time_masking = torchaudio.transforms.TimeMasking(time_mask_param, iid_masks=True)

    def forward(self, fbank: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return fbank
        # torchaudio masks (..., freq, time); iid per-example masks need a 4-D batch
        spec = fbank.transpose(-1, -2)
        squeeze = spec.dim() < 4
        spec = spec.reshape(-1, 1, *spec.shape[-2:]) if squeeze else spec
        spec = self.time_masking(self.freq_masking(spec, self.mask_value), self.mask_value)
        return spec.reshape(fbank.transpose(-1, -2).shape).transpose(-1, -2)


class FbankTransform(nn.Module):
    """Waveform -> normalised log-mel fbank frames, as AST / AudioMAE.

    Args:
        target_length: Frames after zero-padding / cutting (1024 for 10 s AudioSet clips).
        num_mel_bins: Mel bins F.
        sample_rate: Expected sample rate of the input (16 kHz, like every model of the paper).
        mean: Dataset fbank mean (default: AudioSet's); see `compute_fbank_stats`.
        std: Dataset fbank std; inputs are normalised as (x - mean) / (2 * std).
        normalize: Apply the normalisation (off to compute dataset statistics).
        resample: Resample inputs given at another rate instead of raising.
        spec_augment: Optional `SpecAugment`, applied in training mode before normalisation.
        frame_shift_ms: Frame shift (10 ms).
        frame_length_ms: Window length (25 ms).
    """

    def __init__(
            self,
            target_length: int = 1024,
            num_mel_bins: int = 128,
            sample_rate: int = 16000,
            mean: float = AUDIOSET_FBANK_MEAN,
            std: float = AUDIOSET_FBANK_STD,
            normalize: bool = True,
            resample: bool = False,
            spec_augment: Optional[SpecAugment] = None,
            frame_shift_ms: float = 10.0,
            frame_length_ms: float = 25.0,
    ) -> None:
        super().__init__()
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.target_length = target_length
        self.num_mel_bins = num_mel_bins
        self.sample_rate = sample_rate
        self.mean = float(mean)
        self.std = float(std)
        self.normalize = normalize
        self.resample = resample
        self.spec_augment = spec_augment
        self.frame_shift_ms = frame_shift_ms
        self.frame_length_ms = frame_length_ms

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """One mono waveform [S] at `sample_rate` -> raw log-mel frames [T', F] (no length fix)."""
        min_samples = int(self.sample_rate * self.frame_length_ms / 1000)
        if waveform.shape[-1] < min_samples:
            raise ValueError(f"waveform too short for one {self.frame_length_ms} ms frame: "
                             f"{waveform.shape[-1]} samples < {min_samples}")
        waveform = waveform.float()
        return _torchaudio().compliance.kaldi.fbank(
            (waveform - waveform.mean())[None],
            htk_compat=True,
            sample_frequency=self.sample_rate,
            use_energy=False,
            window_type="hanning",
            num_mel_bins=self.num_mel_bins,
            dither=0.0,
            frame_shift=self.frame_shift_ms,
            frame_length=self.frame_length_ms,
        )

    def fix_length(self, frames: torch.Tensor) -> torch.Tensor:
        """Zero-pad at the end or cut [T', F] to [target_length, F]."""
        missing = self.target_length - frames.shape[0]
        if missing > 0:
            return nn.functional.pad(frames, (0, 0, 0, missing))
        return frames[: self.target_length]

    def forward(self, waveform: torch.Tensor, sample_rate: Optional[int] = None) -> torch.Tensor:
        """Waveform [S], [1, S] or [B, 1, S] -> fbank [1, T, F] or [B, 1, T, F].

        Args:
            waveform: Mono audio.
            sample_rate: Its sample rate; None means `self.sample_rate`.

        Raises:
            ValueError: Wrong shape, empty or non-finite audio, or a different sample rate without `resample`.
        """
        batch, batched = _as_mono_batch(waveform)
        if batch.numel() == 0:
            raise ValueError(f"fbank got an empty waveform {list(waveform.shape)}")
        if not bool(torch.isfinite(batch).all()):
            raise ValueError("fbank got non-finite values (NaN or inf) in the waveform")
        if sample_rate is not None and sample_rate != self.sample_rate:
            if not self.resample:
                raise ValueError(f"fbank expects audio at {self.sample_rate} Hz, got {sample_rate} Hz; "
                                 f"resample it or build FbankTransform(resample=True)")
            batch = _torchaudio().functional.resample(batch.float(), sample_rate, self.sample_rate)
        frames = torch.stack([self.fix_length(self.fbank(clip)) for clip in batch])[:, None]  # [B, 1, T, F]
        if self.spec_augment is not None and self.training:
            frames = self.spec_augment(frames)
        if self.normalize:
            frames = (frames - self.mean) / (2 * self.std)
        return frames if batched else frames[0]


@torch.no_grad()
def compute_fbank_stats(
        waveforms: Iterable[torch.Tensor],
        target_length: int = 1024,
        num_mel_bins: int = 128,
        sample_rate: int = 16000,
) -> Tuple[float, float]:
    """Mean and std of the (padded / cut, unnormalised) fbank values over a dataset, as AST / AudioMAE.

    Like the reference recipe, the statistics are the averages of the per-clip mean and std.

    Args:
        waveforms: Iterable of mono 16 kHz waveforms ([S], [1, S] or [B, 1, S]).
        target_length: Frames per clip, as used for training.
        num_mel_bins: Mel bins.
        sample_rate: Sample rate of the waveforms.

    Returns:
        (mean, std) to pass to `FbankTransform`.
    """
    transform = FbankTransform(target_length, num_mel_bins, sample_rate, normalize=False)
    means, stds = [], []
    for waveform in waveforms:
        frames = transform(waveform, sample_rate)
        frames = frames.reshape(-1, target_length * num_mel_bins)
        means.append(frames.mean(dim=1))
        stds.append(frames.std(dim=1))
    if not means:
        raise ValueError("compute_fbank_stats got no waveforms")
    return float(torch.cat(means).mean()), float(torch.cat(stds).mean())

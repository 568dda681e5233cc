"""Voice activity detection on labelled espeak-ng speech with pink noise."""

from __future__ import annotations

import numpy as np
import pytest

from theta_voice.corpus import speech_clip
from theta_voice.errors import VoiceConfigError
from theta_voice.vad import VADS, EnergyVad, PushToTalk, frame_dbfs, make_vad


def precision_recall(pred: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    tp = int(np.sum(pred & labels))
    return tp / max(int(pred.sum()), 1), tp / max(int(labels.sum()), 1)


@pytest.mark.parametrize(("snr", "min_precision", "min_recall"), [
    (None, 0.8, 0.97), (20, 0.7, 0.95), (10, 0.7, 0.93), (0, 0.7, 0.85),
])
def test_energy_vad_on_labelled_speech(snr: float | None, min_precision: float,
                                       min_recall: float) -> None:
    clip = speech_clip(sentences=4, snr_db=snr, seed=2)
    vad = EnergyVad()
    pred = np.array([vad.push(f, i * 0.02) for i, f in enumerate(clip.frames())])
    precision, recall = precision_recall(pred, clip.labels)
    assert precision >= min_precision and recall >= min_recall, (precision, recall)
    assert 0.4 < vad.speech_ratio < 0.95


def test_noise_alone_is_not_speech() -> None:
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(48_000 * 3) * 1500).astype(np.int16)  # about -27 dBFS
    vad = EnergyVad()
    pred = [vad.push(f, i * 0.02) for i, f in enumerate(noise.reshape(-1, 960))]
    assert sum(pred[25:]) <= 2  # the floor has adapted after half a second
    assert vad.noise_floor_dbfs == pytest.approx(frame_dbfs(noise[:960]), abs=2.0)


def test_hysteresis_and_hangover() -> None:
    vad = EnergyVad(hangover=0.2)
    rng = np.random.default_rng(1)

    def noise() -> np.ndarray:
        return (rng.standard_normal(960) * 300).astype(np.int16)  # about -41 dBFS

    loud = (np.sin(np.arange(960) * 0.1) * 8000).astype(np.int16)
    for _ in range(50):
        vad.push(noise(), 0)
    assert not vad.active
    assert vad.push(loud, 1.0)
    after = [vad.push(noise(), 1.0 + i * 0.02) for i in range(1, 20)]
    assert after[:10] == [True] * 10 and not any(after[11:])  # 200 ms hangover, then off
    # Between the start and stay margins: stays on if already on, does not start.
    mid_level = vad.noise_floor_dbfs + (vad.start_db + vad.stay_db) / 2
    mid = (noise() * 10 ** ((mid_level - frame_dbfs(noise())) / 20)).astype(np.int16)
    assert not vad.push(mid, 2.0)
    vad.push(loud, 2.02)
    assert vad.push(mid, 2.04) and vad._hang == vad.hangover_frames


def test_manual_modes_and_registry() -> None:
    assert {"energy", "push_to_talk", "always_on"} <= set(VADS)
    ptt = make_vad("push_to_talk")
    assert isinstance(ptt, PushToTalk)
    loud = np.full(960, 10_000, np.int16)
    assert not ptt.push(loud, 0.0)
    ptt.pressed = True
    assert ptt.push(np.zeros(960, np.int16), 0.02)
    assert make_vad("always_on").push(np.zeros(960, np.int16), 0.0)
    with pytest.raises(VoiceConfigError):
        make_vad("silero")
    with pytest.raises(VoiceConfigError):
        EnergyVad(start_db=3, stay_db=6)

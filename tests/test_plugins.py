"""Backend discovery: selection order, clear failures, the built-in backends."""

from importlib import metadata

import numpy as np
import pytest

from theta_ecs import BackendUnavailableError, plugins
from theta_ecs.backends.null import NullAudioSink, NullRenderer
from theta_ecs.interfaces import AudioSink, InputProvider, Renderer, VoiceCodec


def test_builtin_backends_are_registered_and_load() -> None:
    by_key = {(s.group, s.name): s for s in plugins.status()}
    for key in [
        ("theta.renderers", "null"),
        ("theta.audio_sinks", "null"),
        ("theta.input", "simulated"),
        ("theta.voice_codecs", "pcm"),
        ("theta.transports", "loopback"),
    ]:
        assert by_key[key].loadable, by_key[key].reason


def test_selection_argument_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THETA_RENDERER", raising=False)
    assert plugins.select("theta.renderers") == "null"
    monkeypatch.setenv("THETA_RENDERER", "moderngl")
    assert plugins.select("theta.renderers") == "moderngl"
    assert plugins.select("theta.renderers", "null") == "null"
    assert isinstance(plugins.create("theta.renderers", "null"), NullRenderer)


def test_unknown_backend_and_group_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THETA_AUDIO_SINK", "vinyl")
    with pytest.raises(BackendUnavailableError, match=r"no backend 'vinyl'.*registered: .*null"):
        plugins.create("theta.audio_sinks")
    with pytest.raises(BackendUnavailableError, match="unknown backend group"):
        plugins.select("theta.nope")


def test_missing_dependency_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = metadata.EntryPoint("broken", "theta_missing_dep_xyz.mod:Thing", "theta.renderers")
    real = plugins.entry_points

    def with_broken(group: str) -> dict[str, metadata.EntryPoint]:
        eps = real(group)
        if group == "theta.renderers":
            eps["broken"] = fake
        return eps

    monkeypatch.setattr(plugins, "entry_points", with_broken)
    with pytest.raises(BackendUnavailableError, match="missing dependency 'theta_missing_dep_xyz'"):
        plugins.create("theta.renderers", "broken")
    status = {s.name: s for s in plugins.status(["theta.renderers"])}
    assert not status["broken"].loadable and "theta_missing_dep_xyz" in status["broken"].reason
    assert status["null"].loadable


def test_null_backends_behave_and_fit_interfaces() -> None:
    r = NullRenderer()
    assert isinstance(r, Renderer)
    r.render([], [np.eye(4, dtype=np.float32)] * 2)
    with pytest.raises(ValueError, match="4x4"):
        r.render([], [np.eye(3)])
    sink = NullAudioSink()
    assert isinstance(sink, AudioSink)
    sink.play(np.zeros(960, np.int16))
    assert sink.samples_played == 960
    with pytest.raises(ValueError, match="int16"):
        sink.play(np.zeros(10, np.float32))  # type: ignore[arg-type]


def test_pcm_codec_and_simulated_input() -> None:
    codec = plugins.create("theta.voice_codecs", "pcm")
    assert isinstance(codec, VoiceCodec)
    frame = (np.sin(np.arange(codec.frame_samples) / 10) * 8000).astype(np.int16)
    np.testing.assert_array_equal(codec.decode(codec.encode(frame)), frame)
    assert not codec.decode(None).any()
    with pytest.raises(ValueError, match="PCM packet"):
        codec.decode(b"\x00" * 7)
    provider = plugins.create("theta.input", "simulated", seed=3)
    assert isinstance(provider, InputProvider)
    a, b = provider.poll(1.25), provider.poll(1.25)
    assert a == b
    assert provider.poll(2.0).head != a.head
    q = np.array(a.head.orientation)
    assert np.isclose(np.linalg.norm(q), 1.0)

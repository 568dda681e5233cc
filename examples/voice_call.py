"""A three-way voice call inside an engine loop: capture, send, receive, mix, play, diagnose.

Each participant is an ECS entity with a ``theta.Position``; each runs a
``theta_voice.session.VoiceSession``. Microphones are the ``null`` audio source replaying
espeak-ng speech (a headless server or a bot would do the same; a desk would use the
``sounddevice`` source), speakers are the ``null`` audio sink. Every pair talks over the core's
loopback transport with a seeded link model (latency, jitter, loss). Each listener's mix pans and
attenuates the others by their positions, and the per-stream VoiceDiagnostics end up in the
world's telemetry.

Run it: ``python examples/voice_call.py --seconds 4 --loss 0.05 --jitter-ms 20``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from theta_ecs import World, plugins
from theta_ecs.backends.loopback import LinkModel, LoopbackNetwork, ManualClock
from theta_ecs.stdcomponents import Position
from theta_voice.corpus import speech_clip
from theta_voice.session import VoiceSession, pump

FRAME_S = 0.02


def run(seconds: float = 4.0, loss: float = 0.05, jitter_ms: float = 20.0,
        latency_ms: float = 15.0, seed: int = 1) -> dict[str, Any]:
    """Simulate the call; returns each listener's view of each speaker and what was played."""
    world = World()
    places = [(0.0, 0.0, 0.0), (2.0, 0.0, -1.0), (-3.0, 0.0, -1.0)]
    entities = [world.spawn({Position: np.array(p, np.float32)}) for p in places]
    people = [VoiceSession(100 + i) for i in range(3)]
    mics = [plugins.create("theta.audio_sources", "null",
                           signal=speech_clip(sentences=2, seed=seed + i).clean)
            for i in range(3)]
    speakers = [plugins.create("theta.audio_sinks", "null") for _ in range(3)]
    clock = ManualClock()
    net = LoopbackNetwork(LinkModel(latency_s=latency_ms / 1e3, jitter_s=jitter_ms / 1e3,
                                    loss=loss, seed=seed), clock=clock)
    links: list[list[Any]] = [[] for _ in range(3)]
    for a in range(3):
        for b in range(a + 1, 3):
            end_a, end_b = net.pair()
            links[a].append(end_a)
            links[b].append(end_b)
    by_stream = {p.sender.stream_id: e for p, e in zip(people, entities)}
    for _ in range(round(seconds / FRAME_S)):
        now = clock.advance(FRAME_S)
        for i, person in enumerate(people):
            # A paced microphone: one 20 ms frame per engine frame.
            person.capture(_frame(mics[i]), now)
            pump(links[i], person, now)  # a mesh: every datagram to every peer
        for i, person in enumerate(people):
            person.mixer.update_from_world(world, entities[i], by_stream)
            person.play_to(speakers[i], now)
    for person in people:
        person.export(world.telemetry)
    return {
        "listeners": {
            p.sender.stream_id: {sid: s.diagnostics().to_dict() for sid, s in p.streams.items()}
            for p in people},
        "played_samples": [s.samples_played for s in speakers],
        "telemetry_keys": sorted(k for k in world.telemetry.counters if k.startswith("voice.")),
    }


def _frame(mic: Any) -> np.ndarray:
    pcm = mic.read(960)
    return np.pad(pcm, (0, 960 - len(pcm))) if len(pcm) < 960 else pcm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--jitter-ms", type=float, default=20.0)
    parser.add_argument("--latency-ms", type=float, default=15.0)
    args = parser.parse_args()
    result = run(args.seconds, args.loss, args.jitter_ms, args.latency_ms)
    keep = ("packets_good", "packets_lost", "fec_recoveries", "interruptions",
            "current_delay_ms", "target_delay_ms")
    for listener, streams in result["listeners"].items():
        for speaker, diag in streams.items():
            print(f"{listener} hears {speaker}:",
                  json.dumps({k: round(diag[k], 1) for k in keep}))


if __name__ == "__main__":
    main()

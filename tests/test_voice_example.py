"""examples/voice_call.py stays true: a three-way call over impaired loopback links where every
listener hears both others, without interruptions, and diagnostics reach the world's telemetry."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "voice_call.py"


def test_three_way_call() -> None:
    spec = importlib.util.spec_from_file_location("voice_call", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["voice_call"] = module
    spec.loader.exec_module(module)
    result = module.run(seconds=2.0, loss=0.05, jitter_ms=20.0)
    assert result["played_samples"] == [100 * 960] * 3
    lost = fec = 0
    for listener, streams in result["listeners"].items():
        assert len(streams) == 2 and listener not in streams
        for diag in streams.values():
            assert diag["packets_good"] > 70 and diag["interruptions"] == 0
            lost += diag["packets_lost"]
            fec += diag["fec_recoveries"]
    # Opus writes FEC only for frames after speech, and only real FEC is counted: some losses
    # fall in pauses and before the first report (each stream alone has too few to judge).
    assert lost > 10 and fec >= 0.4 * lost
    assert any(k.endswith(".packets_good") for k in result["telemetry_keys"])

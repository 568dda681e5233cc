"""theta_voice's metric declarations for the Prometheus export (``theta.metrics`` entry point).

Source ``voice``: one :class:`~theta_voice.diagnostics.VoiceDiagnostics` per stream, labelled
with the stream id and its direction (``rx`` a remote speaker we hear, ``tx`` our capture).
``VoiceSession.watch_metrics(exporter)`` registers every stream as it appears. Rows of each
metric are in docs/metrics.md.
"""

from __future__ import annotations

from theta_ecs.metrics import REGISTRY

R = REGISTRY
_L = ("stream", "direction")
_MS = 1e-3

for key, name, unit, meaning in (
    ("packets_sent", "theta_voice_sent_packets_total", "packets", "Voice packets sent."),
    ("bytes_sent", "theta_voice_sent_bytes_total", "bytes",
     "Voice bytes sent, 18-byte headers included."),
    ("packets_received", "theta_voice_received_packets_total", "packets",
     "Voice packets that reached the jitter buffer."),
    ("packets_good", "theta_voice_good_packets_total", "packets",
     "Packets played at their time."),
    ("packets_late", "theta_voice_late_packets_total", "packets",
     "Packets that arrived after their playout time (dropped)."),
    ("packets_duplicate", "theta_voice_duplicate_packets_total", "packets",
     "Duplicate packets (dropped)."),
    ("packets_out_of_window", "theta_voice_out_of_window_packets_total", "packets",
     "Packets too far ahead of the stream (dropped unless a resync confirms them)."),
    ("packets_mismatched", "theta_voice_mismatched_packets_total", "packets",
     "Packets of another codec or frame length than the stream's, or with a timestamp "
     "behind the timeline (dropped)."),
    ("decode_errors", "theta_voice_decode_errors_total", "packets",
     "Packets the codec could not decode (concealed instead)."),
    ("resyncs", "theta_voice_resyncs_total", "resyncs",
     "Times a stream's timeline restarted on a jumped sequence."),
    ("concealed_samples", "theta_voice_concealed_samples_total", "samples",
     "Samples played from concealment (PLC) instead of a packet."),
    ("concealment_events", "theta_voice_concealment_events_total", "events",
     "Runs of concealment (one per gap)."),
    ("interruptions", "theta_voice_interruptions_total", "events",
     "Concealments of 150 ms or more."),
    ("fec_recoveries", "theta_voice_fec_recoveries_total", "packets",
     "Lost packets rebuilt from the next packet's FEC data."),
):
    R.counter(name, unit, meaning, source="voice", key=key, labels=_L)

R.counter("theta_voice_interruption_seconds_total", "seconds",
          "Time spent in interruptions (concealments of 150 ms or more).",
          source="voice", key="interruption_ms", labels=_L, scale=_MS)
R.gauge("theta_voice_lost_packets", "packets",
        "Packets counted lost (a gauge: one that turns up late moves to the late counter).",
        source="voice", key="packets_lost", labels=_L)
R.gauge("theta_voice_buffer_delay_seconds", "seconds",
        "Jitter-buffer delay behind the fastest recent packet.",
        source="voice", key="current_delay_ms", labels=_L, scale=_MS)
R.gauge("theta_voice_buffer_target_delay_seconds", "seconds",
        "The delay the jitter buffer aims for (95th percentile of jitter plus a frame).",
        source="voice", key="target_delay_ms", labels=_L, scale=_MS)
R.gauge("theta_voice_loss_ratio", "ratio", "Lost over expected packets.",
        source="voice", key="loss_rate", labels=_L)
R.gauge("theta_voice_vad_active", "state",
        "1 while the speaker is talking (tx: our VAD; rx: the last frame played was speech).",
        source="voice", key="vad_active", labels=_L)
R.gauge("theta_voice_speech_ratio", "ratio", "Share of frames that were speech.",
        source="voice", key="speech_ratio", labels=_L)
R.gauge("theta_voice_encode_duration_seconds", "seconds", "Mean CPU time to encode a frame.",
        source="voice", key="encode_ms", labels=_L, scale=_MS)
R.gauge("theta_voice_decode_duration_seconds", "seconds", "Mean CPU time to decode a frame.",
        source="voice", key="decode_ms", labels=_L, scale=_MS)
R.gauge("theta_voice_bitrate_bits_per_second", "bits per second",
        "Bits sent per second of captured audio, headers included.",
        source="voice", key="bitrate_bps", labels=_L)

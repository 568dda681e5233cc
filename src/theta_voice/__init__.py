"""theta_voice: Opus voice chat for theta (plugs into theta_ecs through entry points).

Modules, each one concept: ``packet`` (the wire format), ``opus`` (the codec), ``jitter`` and
``delay`` (the adaptive jitter buffer and its policies), ``vad`` (voice activity), ``mixer``,
``stream`` (one speaker's sender and receiver), ``session`` (a participant), ``diagnostics``,
``devices`` (sound cards), and for tests and benchmarks ``corpus``, ``quality``, ``simulate``.
Nothing heavy is imported here, so ``theta backends`` can say which piece is missing.
"""

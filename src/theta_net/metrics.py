"""theta_net's metric declarations for the Prometheus export (``theta.metrics`` entry point).

A Server or Client writes its figures into its world's telemetry (``net.*`` keys): counters as
events happen, gauges once a second. Rows of each metric are in docs/metrics.md.
"""

from __future__ import annotations

from theta_ecs.metrics import REGISTRY

from .session.events import RefusalCode

R = REGISTRY
_COUNTERS = "telemetry.counters"
_GAUGES = "telemetry.gauges"

R.counter("theta_net_state_refused_total", "packets",
          "Client: state packets the receiver refused (undecodable or for another schema).",
          source=_COUNTERS, key="net.state_refused")
R.counter("theta_net_sync_answer_too_large_total", "answers",
          "Server: command-log sync answers larger than the reliable channel's message limit, "
          "dropped (the client asks again).", source=_COUNTERS, key="net.sync_answer_too_large")
R.counter("theta_net_roster_refused_total", "members",
          "Client: roster members from the server it could not add (a key whose net-id "
          "namespace collides with another member's), skipped.", source=_COUNTERS,
          key="net.roster_refused")
R.counter("theta_net_relay_refused_total", "packets",
          "Server: command packets from a client not relayed to the others (a batch that does "
          "not decode or is another author's).", source=_COUNTERS, key="net.relay_refused")
for _code in RefusalCode:
    _name = _code.name.lower()
    R.counter(f"theta_net_refused_{_name}_total", "handshakes",
              f"Server: handshakes refused for {_name.replace('_', ' ')}.",
              source=_COUNTERS, key=f"net.refused.{_name}")

# -- voice (theta_net.voice): the server's relay and each client's voice channel ----------------
for _key, _unit, _help in (
    ("received", "datagrams",
     "Server: voice datagrams from admitted speakers under their own stream."),
    ("relayed", "datagrams", "Server: voice datagrams forwarded, one per listener."),
    ("relayed_bytes", "bytes", "Server: voice payload bytes forwarded, counted per listener."),
    ("rate_dropped", "datagrams",
     "Server: voice datagrams over their speaker's byte or packet budget (a flood), dropped."),
    ("forged", "datagrams",
     "Server: voice datagrams claiming another stream than their sender's, dropped."),
    ("not_admitted", "datagrams", "Server: voice from a session that is not an admitted client."),
    ("listener_dropped", "datagrams",
     "Server: relayed voice a listener's voice budget had no room for, dropped."),
    ("no_voice", "datagrams",
     "Server: relays skipped for listeners that negotiated no voice or not that codec."),
    ("sent", "datagrams", "Client: voice datagrams sent on the VOICE channel."),
    ("send_dropped", "datagrams",
     "Client: voice sends dropped (not connected, voice closed, or over the voice budget)."),
    ("delivered", "datagrams", "Client: relayed voice datagrams received."),
    ("inbox_dropped", "datagrams",
     "Client: received voice dropped, oldest first, because the engine did not drain it."),
):
    R.counter(f"theta_net_voice_{_key}_total", _unit, _help, source=_COUNTERS,
              key=f"net.voice.{_key}")

# -- gauges (server side, once a second) -------------------------------------------------------
R.gauge("theta_net_clients", "clients", "Server: connected clients.", source=_GAUGES,
        key="net.clients")
R.gauge("theta_net_pending_handshakes", "handshakes", "Server: handshakes in progress.",
        source=_GAUGES, key="net.pending_handshakes")
R.gauge("theta_net_srtt_max_seconds", "seconds",
        "Server: the largest smoothed round-trip time among its clients.",
        source=_GAUGES, key="net.srtt_ms_max", scale=1e-3)
R.gauge("theta_net_rttvar_max_seconds", "seconds",
        "Server: the largest round-trip time variance among its clients.",
        source=_GAUGES, key="net.rttvar_ms_max", scale=1e-3)
R.gauge("theta_net_loss_max_ratio", "ratio",
        "Server: the highest heartbeat loss estimate among its clients.",
        source=_GAUGES, key="net.loss_max")
R.gauge("theta_net_state_sent_bytes", "bytes",
        "Server: state bytes sent to all clients since start.",
        source=_GAUGES, key="net.state_bytes")

# -- gauges (client side, once a second) -------------------------------------------------------
R.gauge("theta_net_rtt_seconds", "seconds", "Client: smoothed round-trip time to the server.",
        source=_GAUGES, key="net.rtt_ms", scale=1e-3)
R.gauge("theta_net_loss_ratio", "ratio", "Client: heartbeat loss estimate.",
        source=_GAUGES, key="net.loss")
R.gauge("theta_net_down_bits_per_second", "bits per second",
        "Client: bytes received over the last second, as a bit rate.",
        source=_GAUGES, key="net.kbps_down", scale=1e3)
R.gauge("theta_net_up_bits_per_second", "bits per second",
        "Client: bytes sent over the last second, as a bit rate.",
        source=_GAUGES, key="net.kbps_up", scale=1e3)
R.gauge("theta_net_mirrored_entities", "entities", "Client: entities mirrored from the server.",
        source=_GAUGES, key="net.entities")
R.gauge("theta_net_transport_quic", "boolean",
        "Client: 1 while its connection runs over QUIC, else 0.",
        source=_GAUGES, key="net.transport.quic")
R.gauge("theta_net_transport_webrtc", "boolean",
        "Client: 1 while its connection runs over WebRTC (the fallback), else 0.",
        source=_GAUGES, key="net.transport.webrtc")
R.gauge("theta_net_transport_choice_seconds", "seconds",
        "Client: how long choosing the transport took (the fallback time when QUIC was given up).",
        source=_GAUGES, key="net.transport_choice_ms", scale=1e-3)
R.counter("theta_net_fallback_timeout_total", "connections",
          "Client: connections that fell back to WebRTC because QUIC did not answer in time.",
          source=_COUNTERS, key="net.fallback.timeout")
R.counter("theta_net_fallback_failed_total", "connections",
          "Client: connections that fell back to WebRTC because QUIC failed at once (refused, "
          "unresolvable, not installed).", source=_COUNTERS, key="net.fallback.failed")

# -- areas of interest (Client.set_interest) ----------------------------------------------------
R.counter("theta_net_interest_updates_total", "areas",
          "Server: areas of interest clients sent and the server applied.",
          source=_COUNTERS, key="net.interest_updates")
R.counter("theta_net_interest_refused_unsupported_total", "areas",
          "Server: areas of interest refused because this server has no interest management "
          "(the client keeps the whole scene).", source=_COUNTERS,
          key="net.interest_refused.unsupported")
R.counter("theta_net_interest_refused_radius_total", "areas",
          "Server: areas of interest refused for a radius over the server's bound (default 8 grid "
          "cells); the client's area stays as it was.", source=_COUNTERS,
          key="net.interest_refused.radius")
R.counter("theta_net_interest_refused_center_total", "areas",
          "Server: areas of interest refused for a centre beyond 1e6 m on an axis; the client's "
          "area stays as it was.", source=_COUNTERS, key="net.interest_refused.center")
R.counter("theta_net_interest_unsupported_total", "areas",
          "Client: areas of interest not sent because the server does not offer interest-area.",
          source=_COUNTERS, key="net.interest_unsupported")

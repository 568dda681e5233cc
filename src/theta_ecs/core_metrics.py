"""The core's metric declarations (the frame loop, the command log, replication).

Adding a counter to the code means adding its declaration here and its row to
docs/metrics.md; ``tests/test_metrics.py`` names whatever is missing.
"""

from __future__ import annotations

from .metrics import REGISTRY, UNDECLARED

R = REGISTRY

# -- the frame loop (source "world": a World handed to the exporter) ----------------------------
R.histogram("theta_frame_duration_seconds", "seconds",
            "Wall time of one World.step (every stage and system).",
            source="world", key="frame")
R.histogram("theta_stage_duration_seconds", "seconds",
            "Wall time of one stage within a frame.", source="world", key="stage",
            labels=("stage",))
R.summary("theta_system_duration_seconds", "seconds",
          "Wall time of one system run (count and sum; per-system histograms would cost "
          "the frame loop too much).", source="world", key="system", labels=("system",))
R.counter("theta_frames_total", "frames", "Frames stepped.", source="world", key="frames")
R.gauge("theta_world_tick", "ticks", "The world's simulation tick.", source="world", key="tick")
R.gauge("theta_entities", "entities", "Live entities.", source="world", key="entities")
R.gauge("theta_archetypes", "archetypes", "Archetypes (distinct component sets) in use.",
        source="world", key="archetypes")

# -- counters of the core's Telemetry -------------------------------------------------------
_COUNTERS: tuple[tuple[str, str, str, str], ...] = (
    # (telemetry key, metric name, unit, meaning)
    ("policy_violations", "theta_policy_violations_total", "violations",
     "Writes by a system to a component it declared read-only (or did not declare)."),
    ("deferred_noop_drops", "theta_deferred_noop_drops_total", "commands",
     "Deferred structural commands that had nothing to do when applied."),
    ("deferred_stale_drops", "theta_deferred_stale_drops_total", "commands",
     "Deferred structural commands dropped because their entity was gone."),
    ("commands_appended", "theta_commandlog_appended_total", "commands",
     "Local commands appended to the command log."),
    ("commands_sent", "theta_commandlog_sent_total", "commands",
     "Local commands signed, stored and handed out for peers (entries, not packets)."),
    ("commands_received", "theta_commandlog_received_total", "commands",
     "Remote commands accepted into the log."),
    ("commands_verified", "theta_commandlog_verified_total", "commands",
     "Remote entries whose Ed25519 signature checked out."),
    ("payload_guard_drops", "theta_commandlog_payload_guard_drops_total", "commands",
     "Guard: entries or packets dropped for an oversized payload."),
    ("rate_limit_drops", "theta_commandlog_rate_limit_drops_total", "commands",
     "Guard: entries over an author's rate limit (left unseen, so a resend can land)."),
    ("source_rate_drops", "theta_commandlog_source_rate_drops_total", "commands",
     "Guard: entries of batches dropped before their signature check because their source "
     "(peer) had wasted its budget of signature checks (forged, over-rate or refused "
     "batches); left unseen, so a sync can bring them."),
    ("sync_rate_drops", "theta_commandlog_sync_rate_drops_total", "requests",
     "Guard: sync requests over the per-peer sync rate."),
    ("malformed_packets", "theta_commandlog_malformed_packets_total", "packets",
     "Guard: command-log packets or batches that failed to decode."),
    ("permission_rejections", "theta_commandlog_permission_rejections_total", "commands",
     "Guard: commands whose author's role lacks the permission."),
    ("unknown_author_drops", "theta_commandlog_unknown_author_drops_total", "commands",
     "Guard: entries from an author not in the roster."),
    ("signature_rejections", "theta_commandlog_signature_rejections_total", "commands",
     "Guard: entries whose signature did not verify (forged or corrupted)."),
    ("sequence_window_drops", "theta_commandlog_sequence_window_drops_total", "commands",
     "Guard: entries too far ahead of an author's sequence (a gap to fill by sync)."),
    ("replay_rejections", "theta_commandlog_replay_rejections_total", "commands",
     "Guard: entries that reuse an integrated entry's identity with other content (a replay "
     "or forgery attempt; before duplicates were counted apart, every re-delivery)."),
    ("equivocations", "theta_commandlog_equivocations_total", "commands",
     "Guard: (author, seq) pairs its author signed in two valid versions: the held version "
     "is withdrawn on every peer the two signed batches (the proof, forwarded) reach."),
    ("revoked_drops", "theta_commandlog_revoked_drops_total", "commands",
     "Guard: entries whose author had no role at their place in the order as this peer knew "
     "it (revoked before them): not stored, quarantined (bounded) in case a grant before "
     "them arrives."),
    ("quarantine_evictions", "theta_commandlog_quarantine_evictions_total", "commands",
     "Guard: entries of authors without a role at their place evicted from the bounded "
     "quarantine (a flood); a resend after a grant before them brings them back."),
    ("duplicates_dropped", "theta_commandlog_duplicates_dropped_total", "commands",
     "Exact re-deliveries of already integrated entries (ordinary network duplication), "
     "dropped without counting as replays."),
    ("checkpoints_made", "theta_commandlog_checkpoints_made_total", "checkpoints",
     "Checkpoints this peer signed (the folded state at a Lamport time; history before it "
     "compacted)."),
    ("checkpoints_applied", "theta_commandlog_checkpoints_applied_total", "checkpoints",
     "Checkpoints received from peers and applied."),
    ("stale_checkpoint_drops", "theta_commandlog_stale_checkpoint_drops_total", "checkpoints",
     "Guard: checkpoints older than the one already applied (resends), ignored."),
    ("rival_checkpoint_drops", "theta_commandlog_rival_checkpoint_drops_total", "checkpoints",
     "Authentic checkpoints neither older nor newer than the one applied (two admins "
     "checkpointed concurrently): refused; peers may fold late entries apart until a "
     "checkpoint covering both."),
    ("checkpoint_permission_rejections",
     "theta_commandlog_checkpoint_permission_rejections_total", "checkpoints",
     "Guard: checkpoints signed by an author without the admin role."),
    ("sync_duplicates", "theta_commandlog_sync_duplicates_total", "commands",
     "Already integrated entries that came again in an answer to our own sync request."),
    ("unknown_command_drops", "theta_commandlog_unknown_command_drops_total", "commands",
     "Entries of a command type this peer has not registered."),
    ("invalid_command_drops", "theta_commandlog_invalid_command_drops_total", "commands",
     "Entries whose payload the command type refused."),
    ("inbox_overflow_drops", "theta_commandlog_inbox_overflow_drops_total", "packets",
     "Guard: command-log packets dropped because their sender already had its byte limit "
     "waiting in the pipeline's inbox (a peer sending faster than the log integrates)."),
    ("pending_overflow_drops", "theta_commandlog_pending_overflow_drops_total", "commands",
     "Entries dropped because the out-of-order pending buffer was full."),
    ("command_rejections", "theta_commandlog_rejections_total", "commands",
     "Commands refused by a reject-conflicts scope."),
    ("command_conflicts", "theta_commandlog_conflicts_total", "commands",
     "Concurrent commands on one scope resolved by its conflict strategy."),
    ("editor_respawns", "theta_editor_respawns_total", "entities",
     "Editor entities recreated while replaying the log."),
    ("replication.bytes_sent", "theta_replication_sent_bytes_total", "bytes",
     "Replication bytes produced, all peers of this world together."),
    ("replication.packets_sent", "theta_replication_sent_packets_total", "packets",
     "Replication packets produced, all peers of this world together."),
)
for _key, _name, _unit, _help in _COUNTERS:
    R.counter(_name, _unit, _help, source="telemetry.counters", key=_key)
R.counter("theta_undeclared_events_total", "events",
          "Any telemetry counter or stats field without a declaration of its own, by key "
          "(exported so nothing is lost; declare it).", source="telemetry.counters",
          key=UNDECLARED, labels=("key",))

# -- gauges of the core's Telemetry -----------------------------------------------------------
_GAUGES: tuple[tuple[str, str, str, float, str], ...] = (
    ("command_sign_ms", "theta_commandlog_sign_duration_seconds", "seconds", 1e-3,
     "Time the last flush took to seal its entries into a signed batch."),
    ("command_verify_us_per_entry", "theta_commandlog_verify_entry_duration_seconds", "seconds",
     1e-6, "Signature check time per entry in the last received batch."),
    ("command_frame_ms", "theta_commandlog_frame_duration_seconds", "seconds", 1e-3,
     "Time the command pipeline took in the last frame."),
    ("command_pending", "theta_commandlog_pending_entries", "entries", 1.0,
     "Received entries waiting for their predecessors."),
    ("command_log_entries", "theta_commandlog_entries", "entries", 1.0,
     "Entries held in the command log."),
    ("command_append_rate", "theta_commandlog_append_rate", "commands per second", 1.0,
     "Local commands appended per second, over the last frame."),
    ("command_inbox_depth", "theta_commandlog_inbox_packets", "packets", 1.0,
     "Received packets waiting for the pipeline."),
    ("command_outbox_depth", "theta_commandlog_outbox_packets", "packets", 1.0,
     "Packets (and sync replies) waiting to be sent."),
)
for _key, _name, _unit, _scale, _help in _GAUGES:
    R.gauge(_name, _unit, _help, source="telemetry.gauges", key=_key, scale=_scale)
R.gauge("theta_undeclared_gauge", "any", "Any telemetry gauge without a declaration of its "
        "own, by key (exported so nothing is lost; declare it).", source="telemetry.gauges",
        key=UNDECLARED, labels=("key",))

# -- replication, per peer (sources "replicator" and "receiver": their .stats objects) ---------
_REPLICATOR: tuple[tuple[str, str, str, str], ...] = (
    ("ticks", "theta_replicator_ticks_total", "ticks", "Ticks offered to this peer."),
    ("packets_sent", "theta_replicator_sent_packets_total", "packets", "Packets sent."),
    ("bytes_sent", "theta_replicator_sent_bytes_total", "bytes", "Bytes sent."),
    ("state_packets", "theta_replicator_state_packets_total", "packets",
     "State packets (snapshots or deltas) sent."),
    ("chunks_sent", "theta_replicator_sent_chunks_total", "chunks",
     "Chunks of multi-datagram states sent."),
    ("chunks_resent", "theta_replicator_resent_chunks_total", "chunks",
     "Chunks sent again on the peer's request."),
    ("acks_received", "theta_replicator_received_acks_total", "acks",
     "Acknowledgements received."),
    ("stale_acks", "theta_replicator_stale_acks_total", "acks",
     "Acknowledgements of states older than the current baseline, ignored."),
    ("malformed", "theta_replicator_malformed_packets_total", "packets",
     "Packets from the peer that failed to decode, dropped."),
    ("deferred_entities", "theta_replicator_deferred_entities_total", "entities",
     "Entity updates deferred to a later tick by the byte budget."),
    ("full_snapshots", "theta_replicator_full_snapshots_total", "packets",
     "Full states sent (no usable baseline)."),
    ("ignored_requests", "theta_replicator_ignored_chunk_requests_total", "requests",
     "Chunk requests dropped (unknown state, or served too recently)."),
    ("forged_acks", "theta_replicator_forged_acks_total", "acks",
     "Guard: acknowledgements of states never (or not yet wholly) sent, refused."),
    ("resyncs", "theta_replicator_resyncs_total", "packets",
     "Full states sent because the peer lacked the acknowledged baseline."),
    ("refused_resyncs", "theta_replicator_refused_resync_requests_total", "requests",
     "Guard: resync requests naming a packet and baseline pair never sent, refused."),
    ("stale_resyncs", "theta_replicator_stale_resync_requests_total", "requests",
     "Resync requests about a baseline no longer in use, ignored."),
)
for _key, _name, _unit, _help in _REPLICATOR:
    R.counter(_name, _unit, _help, source="replicator", key=_key, labels=("peer",))

_RECEIVER: tuple[tuple[str, str, str, str], ...] = (
    ("packets", "theta_receiver_packets_total", "packets", "Packets received."),
    ("bytes", "theta_receiver_received_bytes_total", "bytes", "Bytes received."),
    ("applied", "theta_receiver_applied_states_total", "states",
     "States applied to the local world."),
    ("stale", "theta_receiver_stale_packets_total", "packets",
     "States older than the applied one, dropped."),
    ("duplicate", "theta_receiver_duplicate_packets_total", "packets",
     "Duplicate datagrams, dropped."),
    ("missing_baseline", "theta_receiver_missing_baseline_drops_total", "packets",
     "Deltas against a baseline this client does not hold, dropped."),
    ("malformed", "theta_receiver_malformed_packets_total", "packets",
     "Packets that failed to decode, dropped."),
    ("chunks", "theta_receiver_chunks_total", "chunks", "Chunks received."),
    ("acks_sent", "theta_receiver_sent_acks_total", "acks", "Acknowledgements sent."),
    ("chunk_requests", "theta_receiver_chunk_requests_total", "requests",
     "Requests for missing chunks sent."),
    ("resync_requests", "theta_receiver_resync_requests_total", "requests",
     "Requests for a full state, sent because a delta's baseline is missing."),
    ("out_of_window", "theta_receiver_out_of_window_states_total", "packets",
     "Guard: states implausibly far ahead of the applied one (junk or a corrupted sequence), "
     "dropped."),
    ("oversize", "theta_receiver_oversize_states_total", "packets",
     "Guard: compressed states inflating beyond what the receiver's max_entities can need "
     "(a decompression bomb), refused at that bound."),
)
for _key, _name, _unit, _help in _RECEIVER:
    R.counter(_name, _unit, _help, source="receiver", key=_key, labels=("peer",))
R.counter("theta_receiver_chunk_drops_total", "chunks",
          "Guard: chunks, or whole incomplete messages, dropped from reassembly, by reason "
          "(duplicate, stale, out_of_window, superseded, expired, evicted, refused).",
          source="receiver", key="chunk_drops", labels=("peer",), expand="reason")

"""The adaptive jitter buffer (sans-I/O): ``push(packet, arrival)`` and ``pop(now)``.

Packets are ordered by sequence number and played on a timeline ``play_time(ts) = ts / rate +
offset``. The buffer delay is ``offset`` minus the fastest recent transit; a
:class:`~theta_voice.delay.DelayPolicy` gives its target (WebRTC NetEq's 95th percentile of
jitter by default), bounded to [min_delay, max_delay] and starting at 60 ms.

The delay changes in silence, not mid-word: on a frame the sender marked non-speech (or a DTX gap)
the buffer drops one frame to shrink the delay or inserts one frame of comfort noise to grow it.
The one exception is an underrun mid-speech (nothing buffered when a frame is due): the buffer
then conceals *and* slides its timeline by one frame (NetEq's "expand"), so a late packet can still
be played; after ``max_expand`` of that the talkspurt is taken as over and the buffer goes idle.

Loss: a frame missing while a later packet is buffered is lost; it is rebuilt from the next
packet's FEC when that packet is there, else concealed. Duplicates, late packets and packets
outside the window are dropped and counted; a forward jump of the sequence, or a jump of the
timestamps (a packet due more than ``max_delay`` ahead of the fastest seen, or behind the
timeline), is resynchronised after two consecutive packets agree (RFC 3550's probation). A
backward jump of the sequence is never followed while the stream plays (replayed packets stay
dropped); after ``restart_after`` seconds without
a packet it could play, any sequence re-anchors the stream (the sender restarted). Memory is
bounded by ``capacity`` packets whatever a sender floods.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, fields

from .delay import DelayPolicy, make_delay_policy
from .errors import VoiceConfigError
from .packet import VoicePacket

__all__ = ["JitterBuffer", "JitterStats", "PlayoutFrame", "PlayoutKind", "PushResult"]

INTERRUPTION_S = 0.150  # WebRTC: a concealment of 150 ms or more is an interruption
_U32 = 2**32
#: A transit this far from the recent ones means the sender's clock jumped, not the network.
CLOCK_JUMP_S = 2.0


class PlayoutKind(enum.Enum):
    NORMAL = "normal"  # the packet, on time
    FEC = "fec"  # a lost packet rebuilt from the next packet's FEC data
    CONCEAL = "conceal"  # a lost packet concealed (PLC)
    EXPAND = "expand"  # nothing buffered mid-speech: concealment that also grows the delay
    DTX = "dtx"  # the sender sent nothing (DTX silence): comfort noise, not a loss
    STRETCH = "stretch"  # one frame of comfort noise inserted in silence to grow the delay


#: Kinds that stand in for speech the listener should have heard.
CONCEALMENT_KINDS = frozenset({PlayoutKind.CONCEAL, PlayoutKind.EXPAND})


class PushResult(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    OUT_OF_WINDOW = "out_of_window"
    RESYNC = "resync"
    MISMATCH = "mismatch"  # a frame length or codec other than the stream's


@dataclass(frozen=True, slots=True)
class PlayoutFrame:
    """What to play at ``play_time`` for the frame stamped ``timestamp``.

    ``payload`` is the packet to decode (None: conceal); for FEC it is the *next* packet, whose
    FEC data rebuilds this frame.
    """

    kind: PlayoutKind
    play_time: float
    timestamp: int
    seq: int
    payload: bytes | None
    speech: bool


@dataclass
class JitterStats:
    """Counters of one stream's buffer (packets unless the name says otherwise)."""

    received: int = 0
    good: int = 0
    late: int = 0
    lost: int = 0
    duplicate: int = 0
    out_of_window: int = 0
    mismatched: int = 0
    resyncs: int = 0
    fec_recoveries: int = 0
    concealed_frames: int = 0
    concealment_events: int = 0
    interruptions: int = 0
    interruption_s: float = 0.0
    expanded_frames: int = 0
    stretched_frames: int = 0
    skipped_frames: int = 0
    dtx_frames: int = 0
    speech_frames: int = 0
    played_frames: int = 0

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _unwrap(value: int, reference: int) -> int:
    """The extended (unwrapped) u32 counter nearest ``reference``."""
    d = (value - reference) % _U32
    if d >= _U32 // 2:
        d -= _U32
    return reference + d


class _RecentSet:
    """The last ``size`` sequence numbers of one kind (played, concealed): bounded memory."""

    __slots__ = ("_order", "_set")

    def __init__(self, size: int) -> None:
        self._order: deque[int] = deque(maxlen=size)
        self._set: set[int] = set()

    def add(self, seq: int) -> None:
        if len(self._order) == self._order.maxlen:
            self._set.discard(self._order[0])
        self._order.append(seq)
        self._set.add(seq)

    def discard(self, seq: int) -> None:
        self._set.discard(seq)  # the deque entry ages out on its own

    def __contains__(self, seq: int) -> bool:
        return seq in self._set

    def clear(self) -> None:
        self._order.clear()
        self._set.clear()


class _State(enum.Enum):
    EMPTY = "empty"  # nothing received yet
    PLAYING = "playing"
    IDLE = "idle"  # a talkspurt ended; the next packet re-anchors the timeline


class JitterBuffer:
    """One speaker's stream: reorder, de-duplicate, time and conceal."""

    def __init__(self, *, sample_rate: int = 48_000, frame_ms: int = 20,
                 policy: DelayPolicy | str = "percentile", min_delay: float = 0.020,
                 max_delay: float = 0.500, max_expand: float = 0.200,
                 capacity: int | None = None, fec: bool = True,
                 restart_after: float = 2.0) -> None:
        if not 0.0 <= min_delay <= max_delay:
            raise VoiceConfigError("need 0 <= min_delay <= max_delay", setting="min_delay",
                                   expected=f"<= {max_delay}", actual=min_delay)
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self.frame_s = self.frame_samples / sample_rate
        self.policy = make_delay_policy(policy) if isinstance(policy, str) else policy
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.max_expand_frames = max(1, round(max_expand / self.frame_s))
        self.capacity = capacity or (2 * math.ceil(max_delay / self.frame_s) + 8)
        self.fec = fec
        self.restart_after = restart_after
        self.stats = JitterStats()
        self._packets: dict[int, tuple[VoicePacket, int]] = {}  # ext seq -> (packet, ext ts)
        self._played = _RecentSet(4 * self.capacity)
        self._concealed = _RecentSet(4 * self.capacity)
        self._state = _State.EMPTY
        self._next_seq = 0
        self._next_ts = 0
        self._offset = 0.0
        self._probation: int | None = None  # the sequence number that would confirm a jump
        self._talking = False
        self._expand_run = 0
        self._conceal_run = 0
        self._rewindable = False
        self._cut_short: int | None = None
        self._last_arrival = -math.inf

    # -- input ----------------------------------------------------------------------------------
    def push(self, packet: VoicePacket, arrival: float) -> PushResult:
        """Take one packet that arrived at ``arrival`` (seconds, the clock ``pop`` uses)."""
        result = self._push(packet, arrival)
        if result is PushResult.ACCEPTED or result is PushResult.RESYNC:
            # Only packets the stream can play end its silence: a restarted sender's packets,
            # dropped as late, kept the restart rule from ever firing while it talked.
            self._last_arrival = max(self._last_arrival, arrival)
        return result

    def _push(self, packet: VoicePacket, arrival: float) -> PushResult:
        self.stats.received += 1
        if packet.frame_ms != self.frame_ms:
            self.stats.mismatched += 1
            return PushResult.MISMATCH
        if self._state is _State.EMPTY:
            self._last_arrival = arrival
            self._anchor(packet, packet.seq, packet.timestamp, arrival)
            return PushResult.ACCEPTED
        seq = _unwrap(packet.seq, self._next_seq)
        ts = _unwrap(packet.timestamp, self._next_ts)
        transit = arrival - ts / self.sample_rate
        quiet_for = arrival - self._last_arrival
        if self._state is _State.IDLE and not self._packets and self._resumes(seq, ts):
            self._count_outage(seq)
            self.policy.observe(transit)
            self._anchor(packet, seq, ts, arrival)
            return PushResult.ACCEPTED
        if (self._state is _State.IDLE and not self._packets and quiet_for >= self.restart_after
                and abs(seq - self._next_seq) >= self.capacity):
            # Long silent, then numbers from elsewhere: the sender restarted its stream.
            self.stats.resyncs += 1
            self._anchor(packet, seq, ts, arrival)
            return PushResult.RESYNC
        if seq < self._next_seq:
            if seq in self._played:  # a copy of what played: says nothing about the network
                self.stats.duplicate += 1
                return PushResult.DUPLICATE
            if seq in self._concealed:  # counted lost when concealed; it was only late
                self._concealed.discard(seq)
                self.stats.lost -= 1
                # Its lateness is jitter the delay should cover; an older replay's is not (a
                # replayed stream would otherwise drive the delay to max_delay).
                self.policy.observe(transit)
                if self._rewind(packet, seq, ts, arrival):
                    return PushResult.ACCEPTED
            self.stats.late += 1
            return PushResult.LATE
        if seq in self._packets:
            self.stats.duplicate += 1
            return PushResult.DUPLICATE
        if self._state is _State.IDLE and not self._packets:
            jumped = seq - self._next_seq >= self.capacity
            if not jumped:  # sequence numbers skipped while idle were lost (DTX sends none)
                self.stats.lost += seq - self._next_seq
                for missing in range(self._next_seq, seq):  # unless they turn up: see _rewind
                    self._concealed.add(missing)
            self.policy.observe(transit)
            self._anchor(packet, seq, ts, arrival)
            if jumped:
                self.stats.resyncs += 1
                return PushResult.RESYNC
            return PushResult.ACCEPTED
        # A packet due more than max_delay before the fastest one seen can't be jitter: the
        # sender's timestamps jumped ahead (or our clock stepped back). Left alone it would play
        # silence until its timestamp came round and hold the delay at max_delay for seconds.
        ahead = self.policy.samples > 0 and transit < self.policy.base - self.max_delay
        # A timestamp behind the timeline on a sequence number that is not: the sender's clock
        # went back. Left alone, every packet was dropped at its turn and the stream fell silent.
        behind = ts < self._next_ts
        if seq >= self._next_seq + self.capacity or ahead or behind:
            if self._probation is not None and seq == self._probation:
                self.stats.resyncs += 1
                if ahead or behind:
                    self.policy.reset()  # transits of the old timeline mean nothing now
                self._anchor(packet, seq, ts, arrival)
                return PushResult.RESYNC
            self._probation = seq + 1
            self.stats.out_of_window += 1
            return PushResult.OUT_OF_WINDOW
        self._probation = None
        self.policy.observe(transit)
        self._packets[seq] = (packet, ts)
        return PushResult.ACCEPTED

    def _resumes(self, seq: int, ts: int) -> bool:
        """Whether a packet after an idle spell continues the stream where it stopped: its
        sequence number skipped as many packets as its timestamp skipped frames. Then no DTX
        silence was between, nor a restart: every packet in the gap was sent and lost (a network
        outage), however long."""
        gap = seq - self._next_seq
        return gap > 0 and ts - self._next_ts == gap * self.frame_samples

    def _count_outage(self, seq: int) -> None:
        """Count a resumed stream's gap as lost (counting stopped at the window before, and a
        gap over it was called a resync) and, when the stream had stopped mid-word, its whole
        length as interruption (the buffer goes idle after ``max_expand`` of concealment, and
        only that much was counted: 200 ms for an outage of seconds)."""
        gap = seq - self._next_seq
        self.stats.lost += gap
        for missing in range(max(self._next_seq, seq - 4 * self.capacity), seq):
            self._concealed.add(missing)  # a late one is re-counted late, not lost
        concealed, self._cut_short = self._cut_short, None
        if concealed is None or gap <= concealed:
            return
        threshold = INTERRUPTION_S - 1e-9
        if concealed * self.frame_s >= threshold:  # counted already, for its concealed part
            self.stats.interruption_s += (gap - concealed) * self.frame_s
        elif gap * self.frame_s >= threshold:
            self.stats.interruptions += 1
            self.stats.interruption_s += gap * self.frame_s

    def _rewind(self, packet: VoicePacket, seq: int, ts: int, arrival: float) -> bool:
        """A talkspurt's first packets reordered behind a later one, which anchored the
        timeline: play them first when nothing has played since and their time is still to come
        (else they were dropped as late, clipping the start of a word, and counted lost too)."""
        if not (self._rewindable and self._state is _State.PLAYING and ts < self._next_ts
                and ts / self.sample_rate + self._offset >= arrival):
            return False
        for skipped in range(seq + 1, self._next_seq):  # recounted when their turn comes
            if skipped in self._concealed:
                self._concealed.discard(skipped)
                self.stats.lost -= 1
        self._packets[seq] = (packet, ts)
        self._next_seq = seq
        self._next_ts = ts
        return True

    def _anchor(self, packet: VoicePacket, seq: int, ts: int, arrival: float) -> None:
        """Start a timeline at this packet: play it ``target`` behind the fastest transit."""
        transit = arrival - ts / self.sample_rate
        if self.policy.samples and (abs(transit - self.policy.base) > CLOCK_JUMP_S
                                    or transit < self.policy.base - self.max_delay):
            self.policy.reset()  # the sender's timestamps jumped: old transits mean nothing
        if self.policy.samples == 0:
            self.policy.observe(transit)
        self._packets.clear()
        self._probation = None
        self._next_seq = seq
        self._next_ts = ts
        self._offset = max(self.policy.base + self.target_delay, transit)
        self._packets[seq] = (packet, ts)
        self._state = _State.PLAYING
        self._expand_run = 0
        self._rewindable = True  # until a frame plays
        self._cut_short = None

    # -- delay ----------------------------------------------------------------------------------
    @property
    def target_delay(self) -> float:
        return min(max(self.policy.target_delay(), self.min_delay), self.max_delay)

    @property
    def current_delay(self) -> float:
        """How far behind the fastest recent packet the buffer plays (seconds)."""
        return self._offset - self.policy.base if self._state is not _State.EMPTY else 0.0

    @property
    def buffered(self) -> int:
        return len(self._packets)

    @property
    def talking(self) -> bool:
        """The last frame played was speech (the remote speaker is talking)."""
        return self._talking

    @property
    def idle(self) -> bool:
        return self._state is not _State.PLAYING

    def next_play_time(self) -> float | None:
        """When :meth:`pop` next has a frame (None: idle); lets a driver sleep until then."""
        if self._state is not _State.PLAYING:
            return None
        return self._next_ts / self.sample_rate + self._offset

    # -- output ---------------------------------------------------------------------------------
    def pop(self, now: float) -> PlayoutFrame | None:
        """The frame due by ``now`` (call until None), or None when nothing is due."""
        while self._state is _State.PLAYING:
            play_time = self._next_ts / self.sample_rate + self._offset
            if now < play_time:
                return None
            frame = self._decide(play_time)
            if frame is not None:
                self._account(frame)
                return frame
        return None

    def _adjust_in_silence(self) -> int:
        """-1 to drop a frame (delay too high), +1 to insert one (too low), 0 to keep."""
        delay, target = self.current_delay, self.target_delay
        half = self.frame_s / 2
        if delay >= target + half - 1e-9 and delay - self.frame_s >= self.min_delay - 1e-9:
            return -1
        if delay < target - half and delay + self.frame_s <= self.max_delay + 1e-9:
            return +1
        return 0

    def _frame(self, kind: PlayoutKind, play_time: float, seq: int, payload: bytes | None,
               speech: bool) -> PlayoutFrame:
        return PlayoutFrame(kind, play_time, self._next_ts % _U32, seq % _U32, payload, speech)

    def _decide(self, play_time: float) -> PlayoutFrame | None:
        """One step at the frame due now; None means the timeline moved and the caller looks
        again (a dropped frame) or the buffer went idle."""
        entry = self._packets.get(self._next_seq)
        if entry is not None:
            packet, ts = entry
            if ts < self._next_ts:  # a timestamp behind the timeline: a broken sender
                del self._packets[self._next_seq]
                self.stats.mismatched += 1
                self._next_seq += 1
                return None
            silent = ts > self._next_ts or not packet.speech
            if silent:
                self._talking = False  # a gap now ends the talkspurt; nothing to conceal
                step = self._adjust_in_silence()
                if step < 0:
                    self._offset -= self.frame_s
                    self.stats.skipped_frames += 1
                    if ts == self._next_ts:
                        self._consume(self._next_seq)
                    else:
                        self._next_ts += self.frame_samples
                    return None
                if step > 0:
                    self._offset += self.frame_s
                    self.stats.stretched_frames += 1
                    return self._frame(PlayoutKind.STRETCH, play_time, self._next_seq, None,
                                       False)
            if ts > self._next_ts:  # the sender was in DTX until ts
                frame = self._frame(PlayoutKind.DTX, play_time, self._next_seq, None, False)
                self._next_ts += self.frame_samples
                return frame
            frame = self._frame(PlayoutKind.NORMAL, play_time, self._next_seq, packet.payload,
                                packet.speech)
            self._consume(self._next_seq)
            return frame
        if self._packets:  # a later packet is here, so this one is lost (or late)
            seq = self._next_seq
            following = self._packets.get(seq + 1)
            self.stats.lost += 1
            self._concealed.add(seq)
            if self.fec and following is not None and following[0].fec and (
                    following[1] == self._next_ts + self.frame_samples):
                frame = self._frame(PlayoutKind.FEC, play_time, seq, following[0].payload,
                                    self._talking)
            else:
                frame = self._frame(PlayoutKind.CONCEAL, play_time, seq, None, self._talking)
            self._next_seq += 1
            self._next_ts += self.frame_samples
            return frame
        # Nothing buffered: an underrun mid-speech, or the end of a talkspurt.
        if (self._talking and self._expand_run < self.max_expand_frames
                and self.current_delay + self.frame_s <= self.max_delay + 1e-9):
            self._expand_run += 1
            self._offset += self.frame_s
            return self._frame(PlayoutKind.EXPAND, play_time, self._next_seq, None, True)
        self._go_idle()
        return None

    def _consume(self, seq: int) -> None:
        del self._packets[seq]
        self._played.add(seq)
        self._next_seq += 1
        self._next_ts += self.frame_samples

    def _go_idle(self) -> None:
        # Frames concealed when the stream stopped mid-word (None: the talkspurt ended).
        self._cut_short = self._conceal_run if self._talking else None
        self._end_concealment()
        self._state = _State.IDLE
        self._talking = False
        self._expand_run = 0

    def _end_concealment(self) -> None:
        if self._conceal_run:
            duration = self._conceal_run * self.frame_s
            if duration >= INTERRUPTION_S - 1e-9:
                self.stats.interruptions += 1
                self.stats.interruption_s += duration
            self._conceal_run = 0

    def _account(self, frame: PlayoutFrame) -> None:
        s = self.stats
        s.played_frames += 1
        self._rewindable = False
        kind = frame.kind
        if kind in CONCEALMENT_KINDS:
            s.concealed_frames += 1
            if self._conceal_run == 0:
                s.concealment_events += 1
            self._conceal_run += 1
            if kind is PlayoutKind.EXPAND:
                s.expanded_frames += 1
            return
        self._end_concealment()
        if kind is PlayoutKind.NORMAL:
            s.good += 1
            self._expand_run = 0
            self._talking = frame.speech
            if frame.speech:
                s.speech_frames += 1
        elif kind is PlayoutKind.FEC:
            s.fec_recoveries += 1
        elif kind is PlayoutKind.DTX:
            s.dtx_frames += 1
            self._talking = False

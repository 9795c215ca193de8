"""A PBFT replica as a pure state machine (Castro & Liskov, OSDI'99 / TOCS'02).

One door in: `step(event) -> Ready`; the shell handles the Ready (persist,
send, apply) and calls `advance(ready)` before the next step. No I/O, no
clock, no global randomness: the same inputs always give the same outputs.

Departures from the paper, each for a reason:
- A replica waiting for a NewView moves past view v on timeout only after a
  quorum reached v; otherwise it keeps re-sending its ViewChange. An isolated
  replica therefore stays at most one view ahead instead of inflating its
  view forever, and the f+1 rule (§4.5.2) still pulls everyone forward.
- Two timers (§4.4), each stretched to 4x a recent latency and capped at
  view_change_timeout_max_ticks, so that under overload a slow but
  progressing cluster keeps its view instead of sliding into view-change
  storms (Aardvark, NSDI'09): accepted PrePrepares must execute within the
  request timeout stretched by the block latency (restarted by any
  progress), and each pending request within the request timeout stretched
  by the request latency, arrival to execution (not restarted by other
  requests' progress: a primary that keeps committing but leaves one
  request out is replaced). The first expiry sends the waiting requests to
  every replica, as the paper's client does; the next one, if they have not
  executed, changes the view.
- Lost messages are re-sent on a timer (the paper assumes retransmission),
  and a periodic Status lets lagging replicas fetch certified blocks and lets
  replicas in an old view receive the current NewView.
- Votes for a stable checkpoint are garbage-collected, so nobody re-sends
  them: a replica whose Status shows an older stable checkpoint gets the
  whole proof (2f+1 signed Checkpoints) instead, and checks it vote by vote.
  A replica re-sends only its latest vote above its stable checkpoint, also
  during view changes.
- As in the paper, ViewChanges and NewViews carry PrePrepare headers and
  digests, never proposal bodies, so every message stays bounded whatever the
  payload. The paper leaves open how a replica gets a body it lacks after a
  view change: it asks the replicas whose signatures certify the digest
  (FetchProposal, one holder per retransmit interval, rotating; 2f+1 of them
  prepared it, so f+1 correct ones hold it), checks the body against the
  digest and only then votes. Bodies from earlier views stay in the log
  until their seq is garbage collected.
- Request batches (proposals and forwarded RequestBatches) are cut by count
  and by bytes, so each fits message_bytes_max (node/core/genesis.py checks the
  worst case of every message against it).
- A proposal carries opaque metadata, checked by an injected callable
  before a replica accepts its PrePrepare (docs/design.md, "Cross-chain
  reads"). A check that says WAIT holds the PrePrepare without a vote and
  asks again every Tick; the held PrePrepare runs the request timer as an
  accepted one does, so a primary that names what never comes is replaced.
- A Commit also signs link(seq), a hash chain over the digests of every seq
  below (docs/design.md, "Block binding"), so a commit certificate binds its
  block to the whole history. A replica sends it only once it knows those
  digests (committed, or prepared in the current view): prepares run in
  parallel, Commits leave in seq order. A fetched block must extend the
  replica's link and comes with the stable-checkpoint proof its sender
  holds; 2f+1 signatures over another history or another checkpoint digest
  stop the replica (Ready.diverged) instead of being grafted or dropped.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import islice

from consensus import events as ev
from consensus import messages as m
from consensus.certificates import (
    VerifiedCache,
    signed_by,
    valid_commit_certificate,
    valid_committed_block,
    valid_prepared_certificate,
    valid_stable_checkpoint,
)
from consensus.config import ReplicaConfig
from consensus.metadata import ACCEPT, PROPOSAL_METADATA_BYTES_MAX, Verdict, always_accept, no_metadata
from consensus.quorum import quorum_size, weak_quorum_size
from consensus.signing import Signer, Verifier, with_signature

_NOTHING = ev.Ready()
VIEW_KEY = ("view",)
CHECKPOINT_KEY = ("checkpoint",)


class MisuseError(RuntimeError):
    """The shell broke the step/advance contract. Peers can never cause this."""


@dataclass
class Slot:
    """Everything the replica knows about one sequence number."""

    seq: int
    pre_prepare: m.PrePrepare | None = None  # accepted in the current view
    accepted_tick: int = 0
    prepares: dict[int, m.Prepare] = field(default_factory=dict)  # current view
    commits: dict[int, m.Commit] = field(default_factory=dict)  # current view
    prepared: m.PreparedCertificate | None = None  # highest view, with its body; survives view changes
    sent_commit: bool = False
    link: bytes | None = None  # link(seq) our Commit signed in this view, or the decided block's
    decided: m.CommittedBlock | None = None  # final; survives view changes
    bodies: dict[bytes, m.Proposal] = field(default_factory=dict)  # digest -> proposal; survives view changes

    def reset_view(self) -> None:
        self.pre_prepare, self.prepares, self.commits, self.sent_commit = None, {}, {}, False
        # A link built on digests merely prepared in the old view may not hold in the new one.
        self.link = self.decided.certificate.link if self.decided else None

    def body(self, digest: bytes) -> m.Proposal | None:
        if digest in self.bodies:
            return self.bodies[digest]
        if self.prepared is not None and self.prepared.digest == digest:
            return self.prepared.pre_prepare.proposal
        return None


def new_view_pre_prepares(
    config: ReplicaConfig, view: int, view_changes: tuple[m.ViewChange, ...], signer: Signer | None
) -> tuple[int, list[m.PrePrepare]]:
    """The paper's O set (§4.4): for every seq above the highest stable
    checkpoint among the ViewChanges, the digest prepared in the highest
    view, or a null proposal's. Returns (min_s, PrePrepare headers). With
    signer None they are unsigned, for comparison with a received NewView."""
    min_s = max(vc.checkpoint.seq for vc in view_changes)
    best: dict[int, m.PreparedCertificate] = {}
    for vc in view_changes:
        for pc in vc.prepared:
            if pc.seq <= min_s:
                continue
            cur = best.get(pc.seq)
            if cur is None or (pc.view, pc.digest) > (cur.view, cur.digest):
                best[pc.seq] = pc
    max_s = max(best, default=min_s)
    primary = config.primary(view)
    out = []
    for seq in range(min_s + 1, max_s + 1):
        pc = best.get(seq)
        digest = pc.digest if pc else m.null_proposal(config.chain_id, seq, primary).digest
        pp = m.PrePrepare(chain_id=config.chain_id, view=view, seq=seq, digest=digest, proposal=None,
                          replica=primary)
        if signer is not None:
            pp = with_signature(pp, signer)
        out.append(pp)
    return min_s, out


def _certifiers(pp: m.PrePrepare, view_changes: tuple[m.ViewChange, ...], me: int) -> tuple[int, ...]:
    """The replicas whose signed messages certify pp's digest at its seq:
    senders of the matching prepared certificates, their PrePrepares and
    Prepares. Each correct one holds the body."""
    who: set[int] = set()
    for vc in view_changes:
        for pc in vc.prepared:
            if (pc.seq, pc.digest) == (pp.seq, pp.digest):
                who.update((vc.replica, pc.pre_prepare.replica), (p.replica for p in pc.prepares))
    who.discard(me)
    return tuple(sorted(who))


def _by_replica(msg) -> int:
    return msg.replica


def _recent_peak(peak: int, latency: int) -> int:
    """Up at once, down slowly: a timeout must follow a slowdown now."""
    return max(latency, (3 * peak + latency) // 4)


def _size(request: m.Request) -> int:
    """A request's share of batch_bytes_max, counted as Proposal.size_bytes does."""
    return len(request.body) + len(request.id)


def _batches(requests, config: ReplicaConfig):
    """Cut `requests` (in order) into batches of at most batch_txs_max requests
    and batch_bytes_max bytes: a proposal or a RequestBatch then fits
    message_bytes_max (node/core/genesis.py checks the worst case). Every request
    alone fits: larger ones are refused on arrival."""
    batch, size = [], 0
    for req in requests:
        if batch and (len(batch) >= config.batch_txs_max or size + _size(req) > config.batch_bytes_max):
            yield batch
            batch, size = [], 0
        batch.append(req)
        size += _size(req)
    if batch:
        yield batch


class Replica:
    def __init__(
        self,
        config: ReplicaConfig,
        signer: Signer,
        verifier: Verifier,
        *,
        validate_request: Callable[[m.Request], bool] | None = None,
        is_committed: Callable[[bytes], bool] | None = None,
        propose_metadata: Callable[[], bytes] | None = None,
        check_metadata: Callable[[bytes], Verdict] | None = None,
        restored: ev.RestoredState | None = None,
    ) -> None:
        self.config = config
        self._signer = signer
        # Signatures already checked are not checked again (certificates carry
        # votes we verified on arrival); forgotten at every stable checkpoint.
        self._verifier = VerifiedCache(verifier, max(1024, 2 * config.validators * config.window_blocks))
        self._validate_request = validate_request or (lambda r: True)
        self._ledger_has = is_committed
        self._propose_metadata = propose_metadata or no_metadata
        self._check_metadata = check_metadata or always_accept
        self._committed_ids: set[bytes] = set()  # ids committed since the last advance (or ever, without a ledger)
        self.counters: dict[str, int] = {}
        self._n = config.validators
        self._me = config.replica
        self._quorum = quorum_size(self._n)

        self.ticks = 0
        self.now_ms = 0
        self.view = 0
        self.view_changing = False
        self.executed_seq = 0
        self.executed_timestamp_ms = 0
        self._link = m.genesis_link(config.chain_id, config.genesis_hash)  # link(executed_seq)
        self.diverged = ""  # set once: this replica's ledger is not the network's; it stops
        self.stable = m.GENESIS_CHECKPOINT
        self._slots: dict[int, Slot] = {}
        self._next_seq = 1  # primary only: next sequence number to assign
        self._last_timestamp_ms = 0

        # requests: id -> (request, arrival tick); unproposed keeps arrival order
        self._pending: dict[bytes, tuple[m.Request, int]] = {}
        self._pending_bytes = 0  # sum of _size over _pending: the pool is bounded in bytes too
        self._unproposed: dict[bytes, None] = {}
        self._to_forward: list[m.Request] = []  # our clients' requests, sent to the primary each tick
        self._in_flight: dict[bytes, int] = {}  # request id -> seq of an accepted PrePrepare

        self._view_changes: dict[int, m.ViewChange] = {}  # latest per replica
        self._new_view: m.NewView | None = None
        self._view_floor = 0  # min-s of the current view's NewView: seqs at or below are decided
        self._view_started_tick = 0
        self._view_change_attempts = 0
        self._last_progress_tick = 0
        self._escalated = False  # waiting requests were sent to every replica
        self._block_latency_ticks = 0  # recent PrePrepare-accepted -> executed latency (peak, slow decay)
        self._request_latency_ticks = 0  # recent request arrival -> executed latency (peak, slow decay)
        self._escalated_tick = 0
        self._checkpoints: dict[int, dict[int, m.Checkpoint]] = {}  # seq -> replica -> vote
        self._own_checkpoint: dict[int, bytes] = {}  # seq -> our executed block hash
        self._fetch_until_tick = -1
        self._fetch_target = 0  # the height state transfer is after
        # seq -> (NewView PrePrepare header, replicas that certified its digest)
        # for bodies being fetched; voting on them waits for the body.
        self._awaiting: dict[int, tuple[m.PrePrepare, tuple[int, ...]]] = {}
        # seq -> (PrePrepare with body, tick it arrived) whose metadata check said
        # WAIT: checked, signed, not accepted, no vote sent (see _admit).
        self._held: dict[int, tuple[m.PrePrepare, int]] = {}
        self._body_requests = 0  # rotates the replica asked for each body
        self._fetch_turn = 0  # rotates state transfer over the peers that claim the target height
        self._claimed_seq: dict[int, int] = {}  # replica -> executed_seq of its latest Status
        # (kind, replica[, seq]) -> (what, tick) of the last answer a peer's request bought: see _may_answer
        self._answered: dict[tuple, tuple[object, int]] = {}
        # seq -> stable-checkpoint proof that came with a fetched block: checked
        # against our own block hash when the shell reports it (BlockExecuted).
        self._transferred: dict[int, m.StableCheckpoint] = {}

        self._ready = ev.Ready()
        self._reset_outbox()
        self._awaiting_advance = False
        if restored is not None:
            self._restore(restored)

    # ---- public read-only view --------------------------------------------

    @property
    def primary(self) -> int:
        return self.config.primary(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self._me and not self.view_changing

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def backlog(self) -> int:
        """Requests known here and not yet executed: proposed (by anyone) or waiting to be."""
        return len(self._in_flight) + len(self._unproposed)

    @property
    def pending_bytes(self) -> int:
        return self._pending_bytes

    @property
    def low_watermark(self) -> int:
        return self.stable.seq

    @property
    def high_watermark(self) -> int:
        return self.stable.seq + self.config.window_blocks

    @property
    def fetching_to(self) -> int:
        """The height state transfer is fetching up to, or 0 when it is not fetching."""
        return self._fetch_target if self._fetch_target > self.executed_seq else 0

    @property
    def behind(self) -> int:
        """How many blocks this replica has executed fewer than the height that
        f+1 peers' latest Status messages claim (so a correct one holds it)."""
        f1 = weak_quorum_size(self._n)
        claims = sorted(self._claimed_seq.values(), reverse=True)
        return max(0, claims[f1 - 1] - self.executed_seq) if len(claims) >= f1 else 0

    # ---- the one door in --------------------------------------------------

    def step(self, event: ev.Event) -> ev.Ready:
        if self._awaiting_advance:
            raise MisuseError("step() called before advance() of the previous Ready")
        handler = self._EVENTS.get(type(event))
        if handler is None:
            raise MisuseError(f"unknown event {type(event).__name__}")
        if not self.diverged:  # a replica on another history takes no further part
            handler(self, event)
        if self._persist or self._out or self._committed or self._serve or self._dropped or self._diverged:
            ready = ev.Ready(
                persist=tuple(self._persist), sync=self._sync, messages=tuple(self._out),
                committed=tuple(self._committed), serve=tuple(self._serve), dropped=tuple(self._dropped),
                diverged=self._diverged,
            )
            self._reset_outbox()
        else:
            ready = _NOTHING  # most steps produce nothing: share one empty, immutable Ready
        self._ready = ready
        self._awaiting_advance = True
        return ready

    def advance(self, ready: ev.Ready) -> None:
        """The shell persisted, sent and applied `ready`."""
        if not self._awaiting_advance or ready is not self._ready:
            raise MisuseError("advance() must get the Ready returned by the last step()")
        self._awaiting_advance = False
        if self._ledger_has is not None:
            self._committed_ids.clear()  # the ledger answers for them from now on

    def screen(self, msg: m.PrePrepare | m.RequestBatch) -> str | None:
        """For the shell, before it checks the signatures of the requests a
        message carries (the expensive part): the cheap checks of sender,
        chain, view and role, then the message's own signature. A reason to
        drop it, or None. Reads state only (the signature check is memoized)."""
        if msg.chain_id != self.config.chain_id:
            return "other chain"
        if not 0 <= msg.replica < self._n or msg.replica == self._me:
            return "unknown sender"
        if isinstance(msg, m.PrePrepare):
            problem = self._pre_prepare_role_problem(msg)
        else:
            problem = "request batch too large" if len(msg.requests) > self.config.batch_txs_max else None
        if problem is None and not signed_by(msg, self._n, self._verifier):
            problem = "bad signature"
        return problem

    def knows_request(self, request_id: bytes) -> bool:
        """Pending, proposed or committed: a resubmission would be a replay."""
        return request_id in self._pending or request_id in self._in_flight or self.is_committed(request_id)

    def is_committed(self, request_id: bytes) -> bool:
        if request_id in self._committed_ids:
            return True
        return self._ledger_has is not None and self._ledger_has(request_id)

    # ---- outbox -----------------------------------------------------------

    def _reset_outbox(self) -> None:
        self._persist: list[ev.Write] = []
        self._sync = False
        self._out: list[ev.Send] = []
        self._committed: list[m.CommittedBlock] = []
        self._serve: list[ev.ServeBlocks] = []
        self._dropped: list[str] = []
        self._diverged = ""

    def _write(self, key: tuple, value, *, sync: bool = True) -> None:
        self._persist.append(ev.Write(key=key, value=value))
        self._sync = self._sync or sync

    def _send(self, msg: m.Message, to: int | None = None) -> None:
        self._out.append(ev.Send(to=to, message=msg))

    def _sign(self, msg):
        return with_signature(msg, self._signer)

    def _drop(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1
        self._dropped.append(reason)

    def _diverge(self, reason: str) -> None:
        """2f+1 validators signed a history or state this replica does not
        hold: its ledger forked or was damaged. It stops for good; the shell
        fail-stops the chain (docs/design.md, "Block binding")."""
        self.diverged = self._diverged = reason

    # ---- restart ----------------------------------------------------------

    def _restore(self, r: ev.RestoredState) -> None:
        self.executed_seq = r.executed_seq
        if r.executed_seq:
            if len(r.executed_link) != 32:
                raise MisuseError("RestoredState needs the link of the executed block")
            self._link = r.executed_link
        self.executed_timestamp_ms = self._last_timestamp_ms = r.executed_timestamp_ms
        records = r.records
        view_record = records.get(VIEW_KEY)
        if view_record is not None:
            self.view, self.view_changing = view_record.view, view_record.changing
            self._view_floor = view_record.floor
        stable = records.get(CHECKPOINT_KEY)
        if stable is not None:
            self.stable = stable
        interval = self.config.checkpoint_interval_blocks
        for seq, block_hash in sorted(r.executed_hashes.items()):
            if self.stable.seq < seq <= self.executed_seq and seq % interval == 0:
                self._own_checkpoint[seq] = block_hash
                self._checkpoints.setdefault(seq, {})[self._me] = self._sign(m.Checkpoint(
                    chain_id=self.config.chain_id, seq=seq, digest=block_hash, replica=self._me))
        for key in sorted(k for k in records if k[0] in ("pre_prepare", "prepared")):
            seq = key[1]
            if seq <= self.stable.seq:
                continue
            slot = self._slot(seq)
            record = records[key]
            if key[0] == "prepared":
                slot.prepared = record  # kept until garbage collection: ViewChanges carry it
            elif record.view == self.view and not self.view_changing and seq > self.executed_seq:
                if record.proposal is None:  # a NewView's header whose body was being fetched
                    self._awaiting[seq] = (record, ())
                    continue
                slot.bodies[record.digest] = record.proposal
                slot.pre_prepare = record
                for req in record.proposal.requests:
                    self._in_flight[req.id] = seq
        for slot in self._slots.values():
            # Our own votes are deterministic: rebuilding them re-signs the same bytes.
            pp = slot.pre_prepare
            if pp is None or slot.seq <= self.executed_seq:
                continue
            if pp.replica != self._me:
                slot.prepares[self._me] = self._vote(m.Prepare, pp)
        self._commit_in_order(self.executed_seq + 1, send=False)  # re-signs the Commits we had sent
        self._next_seq = max([self.executed_seq, self._view_floor, *self._awaiting,
                              *(s.seq for s in self._slots.values() if s.pre_prepare)]) + 1
        if self.view_changing:
            self._view_changes[self._me] = self._make_view_change()

    # ---- helpers ----------------------------------------------------------

    def _slot(self, seq: int) -> Slot:
        slot = self._slots.get(seq)
        if slot is None:
            slot = self._slots[seq] = Slot(seq=seq)
        return slot

    def _vote(self, kind, pp: m.PrePrepare, **link):
        return self._sign(kind(chain_id=pp.chain_id, view=pp.view, seq=pp.seq, digest=pp.digest, replica=self._me,
                               **link))

    def _verified(self, msg: m.Message) -> bool:
        if signed_by(msg, self._n, self._verifier):
            return True
        self._drop("bad signature")
        return False

    def _in_window(self, seq: int) -> bool:
        return max(self.low_watermark, self._view_floor, self.executed_seq) < seq <= self.high_watermark

    # ---- inputs -----------------------------------------------------------

    def _on_message(self, msg: m.Message) -> None:
        if msg.chain_id != self.config.chain_id:
            return self._drop("other chain")
        if not 0 <= msg.replica < self._n:
            return self._drop("unknown sender")
        if msg.replica == self._me and not isinstance(msg, m.NewView):  # a NewView may come back forwarded
            return self._drop("from self")
        handler = self._HANDLERS.get(type(msg))
        if handler is None:
            return self._drop("unknown message")
        handler(self, msg)

    def _on_tick(self, tick: ev.Tick) -> None:
        self.ticks += 1
        self.now_ms = tick.now_ms
        cfg = self.config
        if self.view_changing:
            if self.ticks - self._view_started_tick >= self._view_change_timeout():
                if self._quorum_reached(self.view):
                    self._view_change_attempts += 1
                    self._start_view_change(self.view + 1)
                else:
                    self._view_started_tick = self.ticks
        else:
            self._recheck_held()
            if self._timer_expired():
                self._on_request_timeout()
            else:
                self._maybe_propose()
                self._flush_forward()
        if self.ticks % cfg.status_interval_ticks == 0:
            self._send(self._sign(m.Status(chain_id=cfg.chain_id, view=self.view, executed_seq=self.executed_seq,
                                           stable_seq=self.stable.seq, replica=self._me)))
        if self.ticks % cfg.retransmit_interval_ticks == 0:
            self._retransmit()
            if self._awaiting and not self.view_changing:
                self._request_bodies()

    def _request_timeout(self, latency: int) -> int:
        """The configured timeout, stretched to 4x a recent latency: an
        overloaded cluster that still commits, only slowly, must not be pushed
        into view changes that would make it slower (Aardvark's lesson).
        Capped, so a slow primary cannot stretch it without bound."""
        cfg = self.config
        return min(max(cfg.request_timeout_ticks, 4 * latency), cfg.view_change_timeout_max_ticks)

    def _view_change_timeout(self) -> int:
        cfg = self.config
        return min(cfg.view_change_timeout_ticks << min(self._view_change_attempts, 16),
                   cfg.view_change_timeout_max_ticks)

    def _quorum_reached(self, view: int) -> bool:
        return sum(1 for vc in self._view_changes.values() if vc.view >= view) >= self._quorum

    def _timer_expired(self) -> bool:
        """§4.4's timers, restarted by a new view and by escalation. Accepted
        PrePrepares must execute within the request timeout stretched by the
        block latency; any progress restarts it (the pipeline moves). Every
        pending request must execute within the request timeout stretched by
        the request latency, whatever else commits: a primary that commits
        the others but leaves one out is replaced (the paper's per-request
        timer; the oldest pending request is the one that expires first)."""
        restarted = max(self._view_started_tick, self._escalated_tick)
        accepted = [s.accepted_tick for s in self._slots.values()
                    if s.seq > self.executed_seq and (s.pre_prepare or s.decided)]
        accepted += [tick for _, tick in self._held.values()]  # held PrePrepares wait like accepted ones
        if accepted and (self.ticks - max(restarted, self._last_progress_tick, min(accepted))
                         >= self._request_timeout(self._block_latency_ticks)):
            return True
        oldest = self._oldest_arrival()
        return oldest is not None and (self.ticks - max(restarted, oldest)
                                       >= self._request_timeout(self._request_latency_ticks))

    def _oldest_arrival(self) -> int | None:
        """The arrival tick of the oldest pending request (_pending keeps arrival order)."""
        return next(iter(self._pending.values()))[1] if self._pending else None

    def _on_request_timeout(self) -> None:
        """First timeout: send the waiting requests to every replica, as a
        PBFT client would, so that all backups start their timers. Second
        timeout (before those requests executed): start a view change."""
        if self._pending and not self._escalated:
            self._escalated = True
            self._escalated_tick = self.ticks
            oldest = next(_batches((req for req, _ in self._pending.values()), self.config))
            self._send(self._sign(m.RequestBatch(chain_id=self.config.chain_id, requests=tuple(oldest),
                                                 replica=self._me)))
        else:
            self._start_view_change(self.view + 1)

    # ---- requests (§4.1) ----------------------------------------------------

    def _on_requests(self, requests: tuple[m.Request, ...], *, forwarded_by: int | None) -> None:
        fresh = []
        for req in requests:
            if req.id in self._pending or req.id in self._in_flight or self.is_committed(req.id):
                continue
            size = _size(req)
            if (len(self._pending) >= self.config.pending_requests_max
                    or self._pending_bytes + size > self.config.pending_requests_bytes_max):
                self._drop("pending requests full")
                continue
            if size > self.config.batch_bytes_max:
                self._drop("request larger than a batch")
                continue
            if forwarded_by is not None and not self._validate_request(req):
                self._drop("invalid request")
                continue
            self._pending[req.id] = (req, self.ticks)
            self._pending_bytes += size
            self._unproposed[req.id] = None
            fresh.append(req)
        if not fresh or self.view_changing:
            return
        if self.is_primary:
            self._maybe_propose(on_arrival=True)
        elif forwarded_by is None:
            # Forward once per tick (or per full batch), not per arrival:
            # one signed message then carries many requests.
            self._to_forward.extend(fresh)
            if len(self._to_forward) >= self.config.batch_txs_max:
                self._flush_forward()

    def _flush_forward(self) -> None:
        waiting = [r for r in self._to_forward if r.id in self._unproposed]
        self._to_forward = []
        if waiting and not self.view_changing and not self.is_primary:
            self._forward(waiting)

    def _forward(self, requests: list[m.Request]) -> None:
        for batch in _batches(requests, self.config):
            self._send(self._sign(m.RequestBatch(chain_id=self.config.chain_id, requests=tuple(batch),
                                                 replica=self._me)), to=self.primary)

    def _on_request_batch(self, msg: m.RequestBatch) -> None:
        if not self._verified(msg):
            return
        if (len(msg.requests) > self.config.batch_txs_max
                or sum(map(_size, msg.requests)) > self.config.batch_bytes_max):
            return self._drop("request batch too large")
        self._on_requests(msg.requests, forwarded_by=msg.replica)

    # ---- normal case: primary (§4.2) ---------------------------------------

    def _maybe_propose(self, *, on_arrival: bool = False) -> None:
        if not self.is_primary or self.executed_seq < self._view_floor or self._awaiting:
            return  # below the floor, or without the new view's bodies, we cannot tell what is committed
        cfg = self.config
        while (self._unproposed and self._next_seq <= self.high_watermark
               and self._next_seq - 1 - self.executed_seq < cfg.in_flight_blocks_max):
            # Batch while the pipeline is busy: an idle pipeline proposes at
            # once (low latency); a busy one lets the batch fill up to the
            # size limit or the wait limit (fewer votes per transaction).
            oldest = next(iter(self._unproposed))
            full = len(self._unproposed) >= cfg.batch_txs_max
            idle = self._next_seq - 1 == self.executed_seq
            waited = self.ticks - self._pending[oldest][1] >= cfg.batch_wait_ticks and not on_arrival
            if not (full or idle or waited):
                return
            self._propose()

    def _propose(self) -> None:
        cfg = self.config
        batch = next(_batches((self._pending[rid][0] for rid in self._unproposed), cfg))
        for req in batch:
            del self._unproposed[req.id]
        self._last_timestamp_ms = max(self.now_ms, self._last_timestamp_ms)
        metadata = self._propose_metadata()
        if len(metadata) > PROPOSAL_METADATA_BYTES_MAX:
            raise MisuseError(f"propose_metadata gave {len(metadata)} bytes, more than {PROPOSAL_METADATA_BYTES_MAX}")
        proposal = m.Proposal(chain_id=cfg.chain_id, seq=self._next_seq, proposer=self._me,
                              timestamp_ms=self._last_timestamp_ms, requests=tuple(batch), metadata=metadata)
        pp = self._sign(m.PrePrepare(chain_id=cfg.chain_id, view=self.view, seq=self._next_seq,
                                     digest=proposal.digest, proposal=proposal, replica=self._me))
        self._next_seq += 1
        self._accept_pre_prepare(pp)
        self._send(pp)

    # ---- normal case: backups (§4.2) ---------------------------------------

    def _pre_prepare_role_problem(self, pp: m.PrePrepare) -> str | None:
        if self.view_changing or pp.view != self.view:
            return "pre-prepare for another view"
        if pp.replica != self.primary:
            return "pre-prepare not from primary"
        if pp.seq not in self._awaiting and not self._in_window(pp.seq):
            return "outside watermarks"
        return None

    def _on_pre_prepare(self, pp: m.PrePrepare) -> None:
        if pp.proposal is None:
            return self._drop("pre-prepare without proposal")
        problem = self._pre_prepare_role_problem(pp)
        if problem:
            return self._drop(problem)
        if pp.seq in self._awaiting:  # the primary re-sent a NewView PrePrepare with its body
            return self._on_body(pp.proposal)
        if self.executed_seq < self._view_floor:
            return  # cannot check for committed requests yet; the primary retransmits
        slot = self._slots.get(pp.seq)
        known = slot.pre_prepare if slot is not None and slot.pre_prepare is not None else None
        if known is None and pp.seq in self._held:
            known = self._held[pp.seq][0]
        if known is not None and known.digest == pp.digest:
            return  # a retransmission (a held one is checked again every Tick)
        if not self._verified(pp):
            return
        if known is not None:
            return self._drop("conflicting pre-prepare")
        problem = self._proposal_problem(pp)
        if problem:
            return self._drop(problem)
        self._admit(pp)

    def _proposal_problem(self, pp: m.PrePrepare) -> str | None:
        cfg, p = self.config, pp.proposal
        if p.digest != pp.digest or p.seq != pp.seq or p.chain_id != cfg.chain_id or p.proposer != pp.replica:
            return "proposal does not match pre-prepare"
        if len(p.requests) > cfg.batch_txs_max or p.size_bytes > cfg.batch_bytes_max:
            return "proposal too large"
        if len(p.metadata) > PROPOSAL_METADATA_BYTES_MAX:
            return "proposal metadata too large"
        if abs(p.timestamp_ms - self.now_ms) > cfg.timestamp_skew_max_ms:
            return "proposal timestamp out of bounds"
        problem = self._duplicate_problem(pp)
        if problem:
            return problem
        for req in p.requests:
            known = self._pending.get(req.id)
            if known is not None:
                if known[0].body != req.body:
                    return "request body differs from the one submitted"
            elif not self._validate_request(req):
                return "invalid request in proposal"
        return None

    def _duplicate_problem(self, pp: m.PrePrepare) -> str | None:
        seen: set[bytes] = set()
        for req in pp.proposal.requests:
            if req.id in seen or self._in_flight.get(req.id, pp.seq) != pp.seq or self.is_committed(req.id):
                return "duplicate request in proposal"
            seen.add(req.id)
        return None

    # ---- proposal metadata (docs/design.md, "Cross-chain reads") -------------

    def _admit(self, pp: m.PrePrepare) -> None:
        """Accept a checked PrePrepare (with its body) if its metadata check
        says ACCEPT; hold it without a vote on WAIT; drop it on REJECT. A null
        proposal has no metadata and needs no check. Holding writes and signs
        nothing, so there is nothing to forget; its requests count as in
        flight, so the primary of a new view does not propose them again."""
        verdict = ACCEPT if pp.proposal.is_null else self._check_metadata(pp.proposal.metadata)
        if verdict.kind == "accept":
            self._held.pop(pp.seq, None)
            return self._accept_pre_prepare(pp)
        if verdict.kind == "wait":
            if pp.seq not in self._held:
                self._held[pp.seq] = (pp, self.ticks)
                for req in pp.proposal.requests:
                    self._in_flight[req.id] = pp.seq
                    self._unproposed.pop(req.id, None)
            return None
        self._release(pp.seq)
        return self._drop(f"metadata rejected: {verdict.reason}")

    def _release(self, seq: int) -> None:
        """Forget a held PrePrepare and its claim on its requests."""
        held = self._held.pop(seq, None)
        if held is not None:
            for req in held[0].proposal.requests:
                if self._in_flight.get(req.id) == seq:
                    del self._in_flight[req.id]

    def _recheck_held(self) -> None:
        """Ask again about every held PrePrepare (every Tick, and on
        MetadataAdvanced), in seq order."""
        for seq in sorted(self._held):
            pp = self._held[seq][0]
            if seq <= self.executed_seq or (self._slots.get(seq) and self._slots[seq].pre_prepare):
                self._release(seq)  # state transfer brought the block
                continue
            problem = self._duplicate_problem(pp)
            if problem:
                self._release(seq)
                self._drop(problem)
                continue
            self._admit(pp)

    def _on_metadata_advanced(self, _: ev.MetadataAdvanced) -> None:
        if self._held and not self.view_changing:
            self._recheck_held()

    def _accept_pre_prepare(self, pp: m.PrePrepare) -> None:
        """Log the PrePrepare durably, then (backups) send Prepare."""
        slot = self._slot(pp.seq)
        slot.pre_prepare = pp
        slot.bodies[pp.digest] = pp.proposal
        slot.accepted_tick = self.ticks
        for req in pp.proposal.requests:
            self._in_flight[req.id] = pp.seq
            self._unproposed.pop(req.id, None)
        self._write(("pre_prepare", pp.seq), pp)
        if pp.replica != self._me:
            prepare = self._vote(m.Prepare, pp)
            slot.prepares[self._me] = prepare
            self._send(prepare)
        self._check_prepared(slot)

    def _on_vote(self, vote: m.Prepare | m.Commit) -> None:
        if self.view_changing or vote.view != self.view:
            return self._drop("vote for another view")
        if vote.seq <= self.executed_seq:
            return  # a late vote for a block we already executed: harmless
        if not self._in_window(vote.seq):
            return self._drop("outside watermarks")
        is_prepare = isinstance(vote, m.Prepare)
        if is_prepare and vote.replica == self.primary:
            return self._drop("prepare from primary")
        slot = self._slot(vote.seq)
        votes = slot.prepares if is_prepare else slot.commits
        known = votes.get(vote.replica)
        if known is not None and known == vote:  # same fields (a Commit's link too), whatever the signature
            return  # a retransmission
        if not self._verified(vote):
            return
        if known is not None:
            return self._drop("double vote")
        votes[vote.replica] = vote
        if is_prepare:
            self._check_prepared(slot)
        else:
            self._check_committed(slot)

    def _prepared_here(self, slot: Slot) -> bool:
        """Prepared in the current view (with the PrePrepare we accepted in it)."""
        return slot.pre_prepare is not None and slot.prepared is not None and slot.prepared.view == self.view

    def _check_prepared(self, slot: Slot) -> None:
        pp = slot.pre_prepare
        if pp is None or self._prepared_here(slot):
            return
        matching = [p for p in slot.prepares.values() if p.digest == pp.digest and p.replica != pp.replica]
        if len(matching) < self._quorum - 1:
            return
        matching.sort(key=_by_replica)  # the certificate is the same whichever votes came first
        slot.prepared = m.PreparedCertificate(pre_prepare=pp, prepares=tuple(matching[: self._quorum - 1]))
        self._write(("prepared", slot.seq), slot.prepared)
        self._commit_in_order(slot.seq)

    def _link_of(self, seq: int) -> bytes | None:
        """link(seq) if we know the digest of every seq up to it: executed,
        decided, or committed by us in this view after preparing it."""
        if seq == self.executed_seq:
            return self._link
        slot = self._slots.get(seq)
        return slot.link if slot is not None and seq > self.executed_seq else None

    def _commit_in_order(self, seq: int, *, send: bool = True) -> None:
        """Our Commit for seq, then for each prepared seq above it that waited
        for it. A Commit signs link(seq), so it waits until the digests of all
        seqs below are known; prepares still run in parallel (docs/design.md,
        "Block binding"). send=False rebuilds the Commits after a restart."""
        while not self.diverged:
            slot = self._slots.get(seq)
            below = self._link_of(seq - 1)
            if slot is None or slot.sent_commit or below is None or not self._prepared_here(slot):
                return
            slot.link = m.next_link(below, slot.pre_prepare.digest)
            slot.sent_commit = True
            commit = slot.commits[self._me] = self._vote(m.Commit, slot.pre_prepare, link=slot.link)
            if send:
                self._send(commit)
                self._check_committed(slot)
            seq += 1

    def _check_committed(self, slot: Slot) -> None:
        pp = slot.pre_prepare
        if pp is None or not slot.sent_commit or slot.decided is not None:
            return
        matching = [c for c in slot.commits.values() if c.digest == pp.digest and c.link == slot.link]
        if len(matching) < self._quorum:
            return
        matching.sort(key=_by_replica)
        cert = m.CommitCertificate(chain_id=pp.chain_id, view=pp.view, seq=pp.seq, digest=pp.digest,
                                   link=slot.link, commits=tuple(matching[: self._quorum]))
        slot.decided = m.CommittedBlock(proposal=pp.proposal, certificate=cert)
        self._execute_decided()
        self._maybe_propose()  # a slot in the pipeline freed up

    # ---- execution --------------------------------------------------------

    def _execute_decided(self) -> None:
        while True:
            slot = self._slots.get(self.executed_seq + 1)
            if slot is None or slot.decided is None or not self._execute(slot.decided):
                return

    def _execute(self, block: m.CommittedBlock) -> bool:
        """Execute the next block, if its certified link extends ours; else
        this replica holds another history below it and stops."""
        link = m.next_link(self._link, block.proposal.digest)
        if block.certificate.link != link:
            self._diverge(
                f"block {block.seq}: 2f+1 validators certified link {block.certificate.link.hex()[:16]}, but "
                f"this node's blocks 1..{block.seq - 1} and the block's digest give link {link.hex()[:16]}: "
                f"its ledger holds another history than the one the validators signed")
            return False
        self._link = link
        self._committed.append(block)
        self.executed_seq = block.seq
        self.executed_timestamp_ms = max(self.executed_timestamp_ms, block.proposal.timestamp_ms)
        self._last_timestamp_ms = max(self._last_timestamp_ms, self.executed_timestamp_ms)
        self._next_seq = max(self._next_seq, block.seq + 1)
        waited = 0
        for req in block.proposal.requests:
            self._committed_ids.add(req.id)
            pending = self._pending.pop(req.id, None)
            if pending is not None:
                waited = max(waited, self.ticks - pending[1])
                self._pending_bytes -= _size(pending[0])
            self._unproposed.pop(req.id, None)
            self._in_flight.pop(req.id, None)
        if waited:
            self._request_latency_ticks = _recent_peak(self._request_latency_ticks, waited)
        slot = self._slots.get(block.seq)
        if slot is not None:  # executed; the prepared certificate stays for ViewChanges until GC
            if slot.pre_prepare is not None:
                self._block_latency_ticks = _recent_peak(self._block_latency_ticks, self.ticks - slot.accepted_tick)
            slot.decided = None
        self._last_progress_tick = self.ticks
        self._view_change_attempts = 0
        oldest = self._oldest_arrival()
        if oldest is None or oldest > self._escalated_tick:
            self._escalated = False  # everything we escalated executed
        return True

    def _on_block_executed(self, e: ev.BlockExecuted) -> None:
        if e.seq % self.config.checkpoint_interval_blocks:
            return
        if e.seq > self.executed_seq:
            raise MisuseError(f"BlockExecuted({e.seq}) for a block the replica has not committed")
        self._own_checkpoint[e.seq] = e.block_hash
        ckpt = self._sign(m.Checkpoint(chain_id=self.config.chain_id, seq=e.seq, digest=e.block_hash,
                                       replica=self._me))
        self._checkpoints.setdefault(e.seq, {})[self._me] = ckpt
        self._send(ckpt)
        self._compare_with_proof(e.seq, e.block_hash)
        self._check_stable(e.seq)

    def _compare_with_proof(self, seq: int, own: bytes) -> None:
        """A stable-checkpoint proof we already hold for seq (it came with the
        fetched block, or is the NewView's min-s): 2f+1 signed that block
        hash, so ours must be the same. Then it is ours to keep."""
        proof = self._transferred.pop(seq, None)
        if proof is None and seq == self.stable.seq:
            proof = self.stable
        if proof is None:
            return
        if proof.digest != own:
            return self._diverge_at_checkpoint(seq, proof.digest, own)
        if seq > self.stable.seq:
            self._make_stable(proof)
        elif seq < self.stable.seq:
            self._write(("checkpoint", seq), proof, sync=False)  # kept for chain verify and for peers

    def _diverge_at_checkpoint(self, seq: int, theirs: bytes, own: bytes) -> None:
        self._diverge(f"DATA_LOSS: stable checkpoint {seq}: {self._quorum} validators signed block hash "
                      f"{theirs.hex()[:16]}, this node computed {own.hex()[:16]}: its ledger or state differs "
                      f"from the one the validators hold")

    # ---- checkpoints and garbage collection (§4.3) ---------------------------

    def _on_checkpoint(self, c: m.Checkpoint) -> None:
        if c.seq <= self.stable.seq:
            return  # a retransmission of a checkpoint we already hold: harmless
        if c.seq % self.config.checkpoint_interval_blocks or c.seq > self.executed_seq + 2 * self.config.window_blocks:
            return self._drop("checkpoint outside watermarks")
        votes = self._checkpoints.setdefault(c.seq, {})
        if c.replica in votes or not self._verified(c):
            return
        votes[c.replica] = c
        self._check_stable(c.seq)

    def _check_stable(self, seq: int) -> None:
        if seq <= self.stable.seq or seq > self.executed_seq:
            return
        votes = self._checkpoints.get(seq, {})
        own = self._own_checkpoint.get(seq)
        if own is None:
            # Restarted since executing seq: a quorum's digest stands in for ours
            # (it holds f+1 correct replicas, which executed the same blocks).
            own = self._quorum_digest(votes)
            if own is None:
                return
        matching = sorted((c for c in votes.values() if c.digest == own), key=lambda c: c.replica)
        if len(matching) < self._quorum:
            theirs = self._quorum_digest(votes)  # never on f or fewer votes: a quorum holds f+1 correct ones
            if theirs is not None:
                self._diverge_at_checkpoint(seq, theirs, own)
            return
        self._make_stable(m.StableCheckpoint(seq=seq, digest=own, proof=tuple(matching[: self._quorum])))

    def _quorum_digest(self, votes: dict[int, m.Checkpoint]) -> bytes | None:
        digests = [c.digest for c in votes.values()]
        return next((d for d in digests if digests.count(d) >= self._quorum), None)

    def _make_stable(self, cp: m.StableCheckpoint) -> None:
        self.stable = cp
        self._write(CHECKPOINT_KEY, cp)
        self._collect_garbage()

    def _collect_garbage(self) -> None:
        low = self.stable.seq
        for seq in [s for s in self._slots if s <= low]:
            del self._slots[seq]
            self._write(("pre_prepare", seq), None, sync=False)
            self._write(("prepared", seq), None, sync=False)
        for seq in [s for s in self._checkpoints if s <= low]:
            del self._checkpoints[seq]
        for seq in [s for s in self._own_checkpoint if s < low]:
            del self._own_checkpoint[seq]
        for key in [k for k in self._answered if k[0] == "body" and k[2] <= low]:
            del self._answered[key]
        self._verifier.clear()

    # ---- view change (§4.4) -----------------------------------------------

    def _make_view_change(self) -> m.ViewChange:
        """Headers only, and at most window_blocks of them: bounded whatever the payload."""
        prepared = tuple(
            m.PreparedCertificate(pre_prepare=s.prepared.pre_prepare.header(), prepares=s.prepared.prepares)
            for _, s in sorted(self._slots.items())
            if s.prepared is not None and self.stable.seq < s.seq <= self.high_watermark)
        return self._sign(m.ViewChange(chain_id=self.config.chain_id, view=self.view, checkpoint=self.stable,
                                       prepared=prepared, replica=self._me))

    def _start_view_change(self, view: int) -> None:
        self.view = view
        self.view_changing = True
        self._view_started_tick = self.ticks
        self._new_view = None
        self._awaiting = {}
        for seq in list(self._held):
            self._release(seq)
        for slot in self._slots.values():
            slot.reset_view()
        self._write(VIEW_KEY, ev.ViewRecord(view=view, changing=True, floor=self._view_floor))
        vc = self._make_view_change()
        self._view_changes[self._me] = vc
        self._send(vc)
        self._maybe_send_new_view()

    def _valid_view_change(self, vc: m.ViewChange) -> bool:
        if vc.chain_id != self.config.chain_id or not signed_by(vc, self._n, self._verifier):
            return False
        if not self._valid_checkpoint(vc.checkpoint):
            return False
        # A correct replica's log lies between its stable checkpoint and the
        # high watermark (_enter_view moves the checkpoint up to min-s), so a
        # ViewChange, and the O set built from it, hold at most window_blocks
        # certificates: bounded in bytes whatever the payload.
        low = vc.checkpoint.seq
        seqs = [pc.seq for pc in vc.prepared]
        if len(set(seqs)) != len(seqs):
            return False
        return all(
            low < pc.seq <= low + self.config.window_blocks and pc.view < vc.view
            and pc.pre_prepare.chain_id == vc.chain_id and pc.pre_prepare.proposal is None
            and valid_prepared_certificate(pc, self._n, self.config.primary(pc.view), self._verifier)
            for pc in vc.prepared)

    def _valid_checkpoint(self, cp: m.StableCheckpoint) -> bool:
        if cp.seq % self.config.checkpoint_interval_blocks:
            return False  # checkpoints are taken every checkpoint_interval_blocks only
        return valid_stable_checkpoint(cp, self.config.chain_id, self._n, self._verifier)

    def _on_view_change(self, vc: m.ViewChange) -> None:
        if vc.view < self.view or (vc.view == self.view and not self.view_changing):
            # The sender is behind: our NewView brings it into the current view
            # (only for a signed ViewChange: the reply is large).
            if self._verified(vc):
                self._send_new_view(vc.replica)
            return
        known = self._view_changes.get(vc.replica)
        if known is not None and (known.signature == vc.signature or self.view + 1 >= known.view >= vc.view):
            # Nothing newer. A claim far ahead of our view is replaceable, so that
            # one huge view does not make us ignore the sender's later ViewChanges.
            return
        if not self._valid_view_change(vc):
            return self._drop("invalid view-change")
        self._view_changes[vc.replica] = vc
        higher = sorted(v.view for v in self._view_changes.values() if v.view > self.view)
        if len(higher) >= weak_quorum_size(self._n):  # f+1 replicas are ahead (§4.5.2)
            self._start_view_change(higher[0])
        else:
            self._maybe_send_new_view()

    def _maybe_send_new_view(self) -> None:
        if not self.view_changing or self.config.primary(self.view) != self._me:
            return
        ready = sorted((vc for vc in self._view_changes.values() if vc.view == self.view), key=lambda v: v.replica)
        if len(ready) < self._quorum:
            return
        chosen = tuple(ready[: self._quorum])
        pre_prepares = new_view_pre_prepares(self.config, self.view, chosen, self._signer)[1]
        nv = self._sign(m.NewView(chain_id=self.config.chain_id, view=self.view, view_changes=chosen,
                                  pre_prepares=tuple(pre_prepares), replica=self._me))
        self._send(nv)
        self._enter_view(nv)

    def _on_new_view(self, nv: m.NewView) -> None:
        if nv.view < self.view or (nv.view == self.view and not self.view_changing):
            return
        if nv.replica != self.config.primary(nv.view) or not self._verified(nv):
            return
        vcs = nv.view_changes
        if (len({vc.replica for vc in vcs}) != len(vcs) or len(vcs) < self._quorum
                or any(vc.view != nv.view or not self._valid_view_change(vc) for vc in vcs)):
            return self._drop("invalid new-view")
        _, expected = new_view_pre_prepares(self.config, nv.view, vcs, None)
        if len(expected) != len(nv.pre_prepares) or any(
                (e.seq, e.digest) != (g.seq, g.digest) or g.proposal is not None
                or g.view != nv.view or g.replica != nv.replica or not signed_by(g, self._n, self._verifier)
                for e, g in zip(expected, nv.pre_prepares)):
            return self._drop("new-view does not match its view-changes")
        self._enter_view(nv)

    def _enter_view(self, nv: m.NewView) -> None:
        self.view = nv.view
        self.view_changing = False
        self._new_view = nv
        self._view_started_tick = self.ticks
        self._escalated = False
        for slot in self._slots.values():
            slot.reset_view()
        best = max(nv.view_changes, key=lambda vc: (vc.checkpoint.seq, vc.replica))
        self._view_floor = best.checkpoint.seq
        self._write(VIEW_KEY, ev.ViewRecord(view=nv.view, changing=False, floor=self._view_floor))
        if best.checkpoint.seq > self.stable.seq:
            # §4.4: the NewView proves min-s stable; the log starts there
            # (a replica that has not executed up to it fetches the blocks).
            self._make_stable(best.checkpoint)
            own = self._own_checkpoint.get(best.checkpoint.seq)
            if own is not None:  # executed already: ours must be the block hash 2f+1 signed
                self._compare_with_proof(best.checkpoint.seq, own)
                if self.diverged:
                    return
        self._in_flight = {rid: s.seq for s in self._slots.values() if s.decided
                           for rid in (r.id for r in s.decided.proposal.requests)}
        o_set = {pp.seq: pp for pp in nv.pre_prepares if pp.seq > self.executed_seq}
        for slot in self._slots.values():
            if slot.seq > self.executed_seq:  # keep only the body the new view needs
                pp = o_set.get(slot.seq)
                body = slot.body(pp.digest) if pp is not None else None
                slot.bodies = {pp.digest: body} if body is not None else {}
        self._awaiting = {}
        self._held = {}  # _in_flight was rebuilt above
        for pp in o_set.values():
            slot = self._slot(pp.seq)
            null = m.null_proposal(self.config.chain_id, pp.seq, pp.replica)
            body = slot.body(pp.digest) or (null if null.digest == pp.digest else None)
            if body is not None:
                self._admit(replace(pp, proposal=body))
                if pp.seq in self._held:
                    self._write(("pre_prepare", pp.seq), pp)  # the header: a restart fetches and checks it again
            else:
                self._awaiting[pp.seq] = (pp, _certifiers(pp, nv.view_changes, self._me))
                self._write(("pre_prepare", pp.seq), pp)  # the header, so a restart fetches it too
        if self._awaiting:
            self._request_bodies()
        self._unproposed = {rid: None for rid in self._pending if rid not in self._in_flight}
        self._next_seq = max([self.executed_seq, self._view_floor, *(pp.seq for pp in nv.pre_prepares)]) + 1
        if self._view_floor > self.executed_seq:
            # 2f+1 replicas executed up to the floor: the checkpoint's signers have the blocks.
            self._fetch(best.replica, self._view_floor)
        if self.is_primary:
            self._maybe_propose()
        elif self._unproposed:
            self._forward([self._pending[rid][0] for rid in self._unproposed])

    # ---- bodies of the new view's PrePrepares ---------------------------------

    def _request_bodies(self) -> None:
        """Ask for every missing body, each time another replica that
        certified its digest (any replica after a restart)."""
        for seq in [s for s in self._awaiting if s <= self.executed_seq]:
            del self._awaiting[seq]  # state transfer brought the block
        others = tuple(i for i in range(self._n) if i != self._me)
        for seq, (pp, certifiers) in self._awaiting.items():
            peers = certifiers or others
            self._send(self._sign(m.FetchProposal(chain_id=self.config.chain_id, seq=seq, digest=pp.digest,
                                                  replica=self._me)),
                       to=peers[(self._body_requests + self._me + seq) % len(peers)])
        self._body_requests += 1

    def _on_fetch_proposal(self, msg: m.FetchProposal) -> None:
        if not self._verified(msg):
            return
        slot = self._slots.get(msg.seq)
        body = slot.body(msg.digest) if slot is not None else None
        if body is not None and self._may_answer(("body", msg.replica, msg.seq), msg.digest):
            self._send(m.ProposalReply(chain_id=self.config.chain_id, proposal=body, replica=self._me),
                       to=msg.replica)

    def _on_proposal_reply(self, msg: m.ProposalReply) -> None:
        self._on_body(msg.proposal)

    def _on_body(self, proposal: m.Proposal) -> None:
        """A body for a PrePrepare of the new view: accepted only if it hashes
        to the digest the NewView certified."""
        waiting = self._awaiting.get(proposal.seq)
        if waiting is None:
            return  # not asked for, or already here: harmless
        pp = waiting[0]
        if proposal.chain_id != self.config.chain_id or proposal.digest != pp.digest:
            return self._drop("proposal does not match its digest")
        del self._awaiting[proposal.seq]
        self._admit(replace(pp, proposal=proposal))
        self._maybe_propose()

    # ---- state transfer -------------------------------------------------------

    def _fetch(self, peer: int, up_to: int) -> None:
        if self.ticks < self._fetch_until_tick:
            return
        self._fetch_until_tick = self.ticks + self.config.retransmit_interval_ticks
        self._fetch_target = up_to
        first = self.executed_seq + 1
        last = min(up_to, first + self.config.fetch_blocks_max - 1)
        self._send(self._sign(m.FetchBlocks(chain_id=self.config.chain_id, from_seq=first, to_seq=last,
                                            replica=self._me)), to=peer)

    def _on_fetch_blocks(self, msg: m.FetchBlocks) -> None:
        if not self._verified(msg):
            return
        if msg.from_seq < 1 or msg.to_seq < msg.from_seq:
            return self._drop("bad fetch range")
        last = min(msg.to_seq, msg.from_seq + self.config.fetch_blocks_max - 1, self.executed_seq)
        if msg.from_seq <= last:
            self._serve.append(ev.ServeBlocks(to=msg.replica, from_seq=msg.from_seq, to_seq=last))

    def _on_blocks_reply(self, msg: m.BlocksReply) -> None:
        if len(msg.blocks) > self.config.fetch_blocks_max or len(msg.checkpoints) > len(msg.blocks):
            return self._drop("blocks reply too large")
        proofs = {cp.seq: cp for cp in msg.checkpoints}
        applied = False
        for block in msg.blocks:
            if block.seq <= self.executed_seq:
                continue
            if block.seq != self.executed_seq + 1:
                return self._drop("blocks reply out of order")
            if not valid_committed_block(block, self.config.chain_id, self._n, self._verifier):
                return self._drop("block with invalid certificate")
            if not self._execute(block):  # a valid certificate over a link we cannot reproduce
                return
            applied = True
            proof = proofs.get(block.seq)
            if proof is not None and self._valid_checkpoint(proof):
                self._transferred[block.seq] = proof
        if applied:
            self._fetch_until_tick = -1
            self._commit_in_order(self.executed_seq + 1)  # link(executed_seq) is known now
            self._execute_decided()
            self._maybe_propose()
            # More to come: the reply was full, or cut short by its byte bound (node/chain/chain_node.py).
            if len(msg.blocks) == self.config.fetch_blocks_max or self.executed_seq < self._fetch_target:
                self._fetch(msg.replica, max(self._fetch_target, self.executed_seq + self.config.fetch_blocks_max))

    def _may_answer(self, key: tuple, what) -> bool:
        """Answers that a peer's request buys (our NewView, a stable
        checkpoint's proof, a proposal body) go out at most once per
        retransmit interval for the same thing: otherwise the asker, possibly
        a Byzantine validator, would choose how much we send."""
        last = self._answered.get(key)
        if last is not None and last[0] == what and self.ticks - last[1] < self.config.retransmit_interval_ticks:
            return False
        self._answered[key] = (what, self.ticks)
        return True

    def _send_new_view(self, to: int) -> None:
        """Our NewView to a replica in an older view."""
        nv = self._new_view
        if nv is None or nv.view != self.view or self.view_changing:
            return
        if self._may_answer(("new-view", to), nv.view):
            self._send(nv, to=to)

    def _on_status(self, st: m.Status) -> None:
        if not self._verified(st):
            return
        if st.view < self.view:
            self._send_new_view(st.replica)
        if (st.stable_seq < self.stable.seq <= st.executed_seq
                and self._may_answer(("checkpoint-proof", st.replica), self.stable.seq)):
            # Its checkpoint votes were garbage-collected by the replicas that
            # made it stable: hand over the proof, a quorum of signed votes.
            for c in self.stable.proof:
                if c.replica != st.replica:
                    self._send(c, to=st.replica)
        self._claimed_seq[st.replica] = st.executed_seq
        if self.ticks < self._fetch_until_tick:
            return
        # Fetch from each replica ahead of us in turn, so that one Byzantine
        # claim of a huge height cannot keep state transfer to itself; and
        # only f+1 claims (one is correct) make a replica that still
        # progresses on its own fetch.
        ahead = sorted(r for r, seq in self._claimed_seq.items() if seq > self.executed_seq)
        if not ahead:
            return
        claims = sorted(self._claimed_seq.values(), reverse=True)
        f1 = weak_quorum_size(self._n)
        far_behind = len(claims) >= f1 and claims[f1 - 1] - self.executed_seq >= self.config.in_flight_blocks_max
        stalled = self.ticks - self._last_progress_tick >= self.config.status_interval_ticks
        if stalled or far_behind:
            self._fetch_turn += 1
            peer = ahead[self._fetch_turn % len(ahead)]
            self._fetch(peer, self._claimed_seq[peer])

    # ---- retransmission -----------------------------------------------------

    def _retransmit(self) -> None:
        # Our latest checkpoint vote not yet stable, in any view: peers need it
        # for their quorum. Votes for stable checkpoints travel as proofs (_on_status).
        mine = max((s for s in self._own_checkpoint if s > self.stable.seq), default=None)
        if mine is not None:
            self._send(self._checkpoints[mine][self._me])
        if self.view_changing:
            self._send(self._view_changes[self._me])
            return
        old = self.ticks - self.config.retransmit_interval_ticks
        for seq, slot in sorted(self._slots.items()):
            pp = slot.pre_prepare
            if pp is None or seq <= self.executed_seq or slot.accepted_tick > old:
                continue
            if pp.replica == self._me:
                self._send(pp)
            else:
                self._send(slot.prepares[self._me])
            if slot.sent_commit:
                self._send(slot.commits[self._me])
        if not self.is_primary and self._unproposed:
            oldest = islice(self._unproposed, self.config.batch_txs_max)
            self._forward([self._pending[rid][0] for rid in oldest])

    _EVENTS = {
        ev.Tick: _on_tick,
        ev.MetadataAdvanced: _on_metadata_advanced,
        ev.MessageReceived: lambda self, e: self._on_message(e.message),
        ev.RequestsSubmitted: lambda self, e: self._on_requests(e.requests, forwarded_by=None),
        ev.BlockExecuted: _on_block_executed,
    }

    _HANDLERS = {
        m.PrePrepare: _on_pre_prepare,
        m.Prepare: _on_vote,
        m.Commit: _on_vote,
        m.Checkpoint: _on_checkpoint,
        m.ViewChange: _on_view_change,
        m.NewView: _on_new_view,
        m.RequestBatch: _on_request_batch,
        m.Status: _on_status,
        m.FetchBlocks: _on_fetch_blocks,
        m.BlocksReply: _on_blocks_reply,
        m.FetchProposal: _on_fetch_proposal,
        m.ProposalReply: _on_proposal_reply,
    }

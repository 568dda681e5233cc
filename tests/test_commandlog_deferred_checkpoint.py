"""A checkpoint signed by an admin granted inside the log, arriving before the grant, is kept and
applied once the grant arrives (it was refused for good, leaving that peer uncompacted)."""

from __future__ import annotations

from theta_ecs.commandlog import Role

from .test_commandlog_support import counters, exchange, make_peer, roster, signer


def test_a_checkpoint_that_arrives_before_its_signers_grant_applies_after_it() -> None:
    r = roster(4, {3: Role.ADMIN})
    admin, granted, late, editor = (make_peer(i, r) for i in (3, 0, 1, 2))
    nid = editor.editor.create_entity({"px": 0.0})
    exchange(admin, granted, late, editor)
    admin.log.grant(signer(0).public_key, Role.ADMIN)
    grant = admin.flush()
    granted.receive(grant)
    editor.receive(grant)
    editor.editor.set_transform(nid, px=1.0)
    edit = editor.flush()
    granted.receive(edit)
    checkpoint = granted.log.checkpoint()
    late.receive(checkpoint)  # before the grant: its signer is no admin yet as far as it knows
    assert counters(late)["checkpoint_permission_rejections"] == 1
    assert late.log.latest_checkpoint is None
    late.receive(grant + edit)
    assert late.log.latest_checkpoint is not None
    assert late.log.latest_checkpoint.raw == granted.log.latest_checkpoint.raw
    assert late.fingerprint() == granted.fingerprint()
    assert late.editor.transform(nid)["px"] == 1.0

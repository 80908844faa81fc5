"""What one role may see of a match: the sealed ``RefereeState`` a remote role is sent.

``Referee.state`` is the whole match, for the in-process caller who owns it. A remote role gets
this view instead. While the match runs it holds

* no ``seed`` (a role that knew it could regenerate every hidden label);
* its own log and reward in full, and of the other roles only what its own observation already
  shows: the fraudster sees the investigator's verdicts and which sources it pulled, the
  investigator sees nothing of the fraudster's log (that would tell proposals from organic ads,
  and their tactics), the auditor sees the whole record once play has ended (the audit phase),
  without the others' rewards;
* of the queue, for the investigator, only the ads it sees (while the fraudster moves, not the
  ads that arrived since its turn ended: its observation's rule);
* the other roles' rewards as 0.0, and ``metadata["sealed"]`` naming what was withheld.

Once the match is done everything is shown, the seed included. The ``match_id`` and
``episode_id`` a server shows are its own (the referee's ids are derived from the seed).
"""

from __future__ import annotations

from typing import Any

from ..rules.catalog import AD_IDS, ROLES
from ..rules.referee import Referee
from .textface import referee_state

REWARD_FIELDS = {"fraudster": "fraudster_reward", "investigator": "investigator_reward",
                 "auditor": "auditor_reward"}
_LOGS = {"fraudster": "fraudster_proposals", "investigator": "investigator_action_log",
         "auditor": "auditor_action_log"}
_PUBLIC_INVESTIGATOR_STATE = ("budget", "verdicts", "pending", "targets_pulled")


def sealed_state(ref: Referee, role: str, match_id: str, episode_id: str) -> dict[str, Any]:
    """The state JSON ``role`` may see now (the whole state once the match is done)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles are {ROLES}")
    data = referee_state(ref).model_dump(mode="json")
    data["match_id"], data["episode_id"] = match_id, episode_id
    if ref.done:
        return data
    sealed = ["seed"]
    data["seed"] = None
    for other, field in REWARD_FIELDS.items():
        if other != role:
            data[field] = 0.0
            sealed.append(field)
    audit_open = ref.phase == "audit_phase"
    for other, log in _LOGS.items():
        if other == role:
            continue
        if role == "auditor" and audit_open:
            if other == "investigator":  # the record, without the investigator's rewards
                data[log] = [{**e, "reward": None} for e in data[log]]
            continue
        data[log] = []
        sealed.append(log)
    if role == "fraudster":
        state = data["investigator_state"]
        data["investigator_state"] = {k: state[k] for k in _PUBLIC_INVESTIGATOR_STATE}
        sealed.append("investigator_state.links")
    elif role == "investigator":  # not the ads it does not see yet (its observation's rule)
        unseen = {AD_IDS[s] for s in ref.unseen_by_investigator()}
        state = data["investigator_state"]
        state["pending"] = [a for a in state["pending"] if a not in unseen]
    elif role == "auditor" and not audit_open:
        data["investigator_state"] = {}
        sealed.append("investigator_state")
    data["metadata"] = {**data.get("metadata", {}), "sealed": sealed}
    return data


__all__ = ["REWARD_FIELDS", "sealed_state"]

"""The policies layer: players that act on the faces, never on the referee's internals.

* ``base``: the ``Policy`` base class, ``RandomPolicy`` and ``views`` (named views of an
  observation vector); ``BatchPolicy``, one role's player in many matches at once, and
  ``PerEnvPolicies``, which puts a ``Policy`` per match behind it;
* ``scripted``: the baselines, ``ScriptedInvestigator`` (with its ``belief`` model),
  ``ReactiveFraudster`` and ``HeuristicAuditor``, and ``BASELINES``;
* ``batched``: ``BatchedScriptedInvestigator``, the scripted investigator's choices in many
  matches at once (``BATCHED_BASELINES``);
* ``references``: the blind, oracle, degenerate and single-tactic yardsticks.

Policies import the rules, ``fraudarena_env.models`` and the faces; never the env, the server,
training or the CLI. One exception, made on first use only: ``FirstSightClassifier`` fits itself on
matches played through ``fraudarena_env.skill``.
"""

from ..faces.encoding import N_ACTIONS
from .base import BatchPolicy, PerEnvPolicies, Policy, RandomPolicy, views
from .batched import BatchedScriptedInvestigator
from .references import (
    BLIND_INVESTIGATORS,
    DEGENERATE_INVESTIGATORS,
    SINGLE_TACTIC_FRAUDSTERS,
    AlwaysApprove,
    AlwaysEscalate,
    AlwaysReject,
    CategoryRule,
    DoNothing,
    FirstSightClassifier,
    FlagEverythingAuditor,
    GibberishFraudster,
    InvestigateSpam,
    LinkEverything,
    NeverPropose,
    OracleInvestigator,
    RejectAllButGray,
    RepeatOneAdFraudster,
    SingleTacticFraudster,
    SurfaceRule,
    WaitingFraudster,
)
from .scripted import (
    BASELINES,
    HeuristicAuditor,
    ReactiveFraudster,
    Reading,
    ScriptedInvestigator,
)

__all__ = ["Policy", "RandomPolicy", "ScriptedInvestigator", "ReactiveFraudster",
           "HeuristicAuditor", "AlwaysReject", "AlwaysApprove", "AlwaysEscalate",
           "InvestigateSpam", "DoNothing", "LinkEverything", "GibberishFraudster",
           "RepeatOneAdFraudster", "FlagEverythingAuditor", "DEGENERATE_INVESTIGATORS",
           "RejectAllButGray", "CategoryRule", "SurfaceRule", "FirstSightClassifier",
           "BLIND_INVESTIGATORS", "OracleInvestigator", "NeverPropose", "SingleTacticFraudster",
           "WaitingFraudster",
           "SINGLE_TACTIC_FRAUDSTERS", "Reading", "BASELINES", "views", "N_ACTIONS",
           "BatchPolicy", "PerEnvPolicies", "BatchedScriptedInvestigator", "BATCHED_BASELINES"]

# The baselines that also play many matches at once (``BatchPolicy``), by role: a batched
# player for ``num_envs`` matches, making the scalar baseline's choices.
BATCHED_BASELINES = {"investigator": BatchedScriptedInvestigator}

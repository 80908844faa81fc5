"""The faces layer: how a player sees a match and acts on it.

* ``encoding``: the tensor face, an action catalogue, a legal-action mask and an observation vector
  with named views per role;
* ``textface``: the text face, the seed protocol's pydantic models (actions in, observations and
  the ``RefereeState`` out);
* ``narration``: the text face's story of a match, told from the rules' typed events: feedback
  lines, the role logs and evidence text, built only when the text face asks;
* ``views``: what a remote role may see of the state while the match runs.

Faces read a referee's state through ``rules.view.MatchView`` and translate actions to the
rules' ops. They import the rules
(``fraudarena_env.rules``) and ``fraudarena_env.models``, and each other; never the env, the
policies, the server, training or the CLI.
"""

"""The rules layer: the game as data (``catalog``), its typed actions (``actions``), how a match is
generated (``generator``), what the evidence shows (``evidence``, ``lexicon``), how it is scored
(``scoring``, ``audit``), the referee that runs it (``referee``), what it records of a match
(``events``: typed, no text; the faces tell them) and how a match is read from outside
(``view.MatchView``: the only surface code outside this package reads a match through;
``tests/test_boundary.py`` holds it to that).

Plain Python and numpy only. Modules here import each other and nothing else of the package: no
pydantic models, no faces, no gymnasium or PettingZoo, no web stack. So the rules can be read,
tested and timed alone.
"""

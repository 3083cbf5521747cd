"""`python -m evaluation humaneval`: the paper's human pairwise evaluation (§5.1.3, Figure 5).

* ``prepare`` samples test histories as the paper did (10 dialogues × 10 histories of varying
  length, seeded), collects the next counselor turn from each source (models, and the human
  counselor of the dialogue) and writes the comparison set and the raters' codes;
* ``serve`` is the raters' web app (``app.py``): sign in with a code, read a history and two
  responses with their sources hidden and in random order, answer A / B / 同程度; every answer is
  saved as it is given (SQLite, ``answers.py``), so a rater can stop and resume;
* ``report`` applies the paper's majority rule, draws Win / Lose / Tie bars like Figure 5 and adds
  Fleiss' κ and a sign test per pair (``report.py``).

The comparison folder holds KokoroChat text (the histories): it is the user's, never committed.
"""

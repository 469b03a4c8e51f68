"""Use cases: each reads top to bottom — build, open the unit of work, load, act, commit."""

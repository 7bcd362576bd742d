"""What the tests and the benchmarks share: serving an app on localhost (`serving`) and timing (`timing`).

Imported from the repository root (pytest and the bench scripts put it on sys.path); never by the app.
"""

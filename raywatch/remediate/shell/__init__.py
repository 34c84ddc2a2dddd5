"""raywatch.remediate.shell — the remediation loop on Ray and Serve.

* :mod:`~raywatch.remediate.shell.controller` — the detached controller actor that runs the
  loop (``get_or_create``);
* :mod:`~raywatch.remediate.shell.retrain` — retrain and scoring as Ray tasks;
* :mod:`~raywatch.remediate.shell.serving` — candidate, promotion and rollback through
  Serve's declarative config;
* :mod:`~raywatch.remediate.shell.router` — the rollout router deployment (shadow mirror,
  canary split, payload log);
* :mod:`~raywatch.remediate.shell.sink` — the ``remediation`` sink that hands alerts to
  the controller;
* :mod:`~raywatch.remediate.shell.compat` — the Ray internals used here.
"""

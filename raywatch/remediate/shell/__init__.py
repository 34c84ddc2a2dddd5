"""raywatch.remediate.shell — the remediation loop on Ray and Serve.

* :mod:`~raywatch.remediate.shell.controller` — the detached controller actor that runs the
  loop (``get_or_create``);
* :mod:`~raywatch.remediate.shell.retrain` — retrain and scoring as Ray tasks;
* :mod:`~raywatch.remediate.shell.serving` — candidate, promotion and rollback through
  Serve's declarative config;
* :mod:`~raywatch.remediate.shell.sink` — the ``remediation`` sink that hands alerts to
  the controller.

The rollout router the controller steers is a Serve deployment, :mod:`raywatch.serve.router`
(shadow mirror, canary split, payload log); the serve-app builder puts it in front of a
model that remediates. The Ray internals it relies on (the applications' declarative configs) are in
:mod:`raywatch.serve.compat` with every other one.
"""

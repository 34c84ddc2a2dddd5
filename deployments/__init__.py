"""Example model deployments that raywatch can watch.

Each module is a plain Ray Serve application that works without raywatch: monitoring is
switched on from a serve config YAML (``configs/serve-*.yaml``) or by wrapping the
deployment with ``raywatch.monitor``. Each model is trained when its deployment is built,
on data the repository generates or that an installed package ships, and each module
offers ``reference_data()`` (the training features, as columns) and ``reference_profile()``
(a :class:`raywatch.stats.profile.Profile` fitted on them).

* :mod:`deployments.fraud` — a card-fraud classifier (numpy logistic regression) trained
  on a seeded synthetic transaction generator (:mod:`deployments.fraud_data`).
* :mod:`deployments.approval` — a regressor (least squares) that predicts FiveThirtyEight's
  presidential approval rating from five pollsters, on river's bundled ``TrumpApproval``
  data set.
"""

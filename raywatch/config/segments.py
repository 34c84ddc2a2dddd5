"""Who is affected: segments, fairness across groups, and attribution (issue 12).

``segments:`` names the columns whose values split every window (a captured feature, or a
request attribute: the route, the version, the replica, the multiplexed model id, a header, a
value an attribute hook returns); ``fairness:`` names protected attributes and how outcomes
are compared across their groups; ``attribution:`` says which prediction shifts are traced
to features, and how replicas are compared with their peers. The defaults of each setting
are those of the pure-core function that reads it (named in each docstring), so the
configuration and the core agree.

:func:`default_rules` are the alert rules these settings add to a model's own rules (unless
a rule of the same name is there): ``DisparateImpact`` and ``EqualizedOddsGap`` per
configured fairness attribute, and ``ReplicaOutlier``.

>>> cfg = SegmentsConfig.model_validate({"columns": {"country": {}, "route": {"source": "route"}}})
>>> cfg.top_k, cfg.columns["country"].source, cfg.columns["route"].source
(20, 'feature', 'route')
>>> validate(SegmentsConfig, {"columns": {"email": {"hash": True}}}, "m.yaml")
Traceback (most recent call last):
...
raywatch.config.base.ConfigError: m.yaml: (top level): columns email have hash: true; set segments.hash_key (a ${ENV} reference)
"""

from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import Field, StrictBool, StrictInt, model_validator

from raywatch.config.alerting import AlertingConfig, AlertRuleConfig
from raywatch import series
from raywatch.config.base import ImportPath, Secret, StrictModel, validate  # noqa: F401 (validate: the doctest)

__all__ = [
    "SegmentSource", "SegmentColumnConfig", "SegmentsConfig", "FairnessAttributeConfig", "FairnessConfig",
    "ReplicaOutlierConfig", "AttributionConfig", "default_rules", "with_default_rules", "check_segments",
    "MODEL_ID_COLUMN",
]

SegmentSource = Literal["feature", "route", "version", "replica", "model_id", "header", "attribute"]

MODEL_ID_COLUMN = "model_id"
"""The segment column a multiplexed deployment's model ids go to without configuration."""


class SegmentColumnConfig(StrictModel):
    """One segment column (``segments.columns.<name>``).

    ``source`` says where a request's value comes from: ``feature`` (a captured feature column,
    ``field`` names it, default the key), ``route`` (route template), ``version`` (the model
    version), ``replica`` (the replica id), ``model_id`` (``serve.get_multiplexed_model_id()``),
    ``header`` (an HTTP request header, ``field`` names it) or ``attribute`` (a value the
    attribute hook ``segments.attributes`` returns under ``field``, for values that are neither
    features nor headers). ``values`` are kept first when present (before the most frequent
    ones); ``hash`` replaces every label by a keyed digest (``segments.hash_key``) before it
    leaves the replica. Read by ``raywatch.stats.segments.Segments.build`` (``prefer``, ``keys``).
    """

    source: SegmentSource = "feature"
    field: Optional[str] = None
    values: List[str] = Field(default_factory=list, max_length=1000)
    hash: bool = False

    @model_validator(mode="after")
    def _header_field(self) -> "SegmentColumnConfig":
        if self.source == "header" and self.field is not None and not self.field.strip():
            raise ValueError("a header column needs the header's name in field")
        return self


class SegmentsConfig(StrictModel):
    """Per-segment summaries: each window keeps, per segment column, the ``top_k`` values by
    traffic plus one ``__other__`` bucket (``raywatch.stats.segments``). Series carry the label
    pair ``segment_column``/``segment``; rules target them like any label.

    * ``top_k`` (default 20, Segments' ``k``): memory per model is at most ``top_k + 1``
      segment-less summaries per column; a cardinality bomb costs no more.
    * ``multiplexed_model_id`` (default true): with ``@serve.multiplexed``, the model id is a
      segment column (``model_id``) without configuration.
    * ``hash_key``: the secret for ``hash: true`` columns and hashed fairness attributes
      (BLAKE2b keyed digest, ``raywatch.stats.labels.segment_label``); a ``${ENV}`` reference.
    * ``max_label_length`` (default 64): longer values keep their head and a digest.
    * ``correct_across_segments`` (default true): the drift level is divided by the number of
      buckets tested (``raywatch.drift.segmented.evaluate_segments``), so a stationary window
      flags any segment with probability at most ``drift.alpha``.
    * ``evaluate_other`` (default true): the ``__other__`` bucket gets its own verdict too.
    * ``attributes``: an import path (or callable) ``f(args, kwargs, result) -> dict`` called off
      the request path for each sampled request; its values feed ``source: attribute`` columns.
    """

    columns: Dict[str, SegmentColumnConfig] = Field(default_factory=dict, max_length=16)
    top_k: int = Field(20, ge=1, le=1000)
    multiplexed_model_id: bool = True
    hash_key: Optional[Secret] = None
    max_label_length: int = Field(64, ge=24, le=256)
    correct_across_segments: bool = True
    evaluate_other: bool = True
    attributes: ImportPath = None

    def feature_fields(self, *, hashed: bool = True) -> Dict[str, str]:
        """Segment column → the captured feature it reads, for the ``feature`` columns
        (``hashed=False`` leaves out those whose labels are hashed)."""
        return {name: c.field or name for name, c in self.columns.items()
                if c.source == "feature" and (hashed or not c.hash)}

    @model_validator(mode="after")
    def _hash_needs_key(self) -> "SegmentsConfig":
        hashed = [n for n, c in self.columns.items() if c.hash]
        if hashed and self.hash_key is None:
            raise ValueError(f"columns {', '.join(hashed)} have hash: true; set segments.hash_key (a ${{ENV}} reference)")
        return self


class FairnessAttributeConfig(StrictModel):
    """One protected attribute (``fairness.attributes.<name>``). ``source``/``field`` as for a
    segment column; it need not be a model feature. ``reference``: ``best`` (the group with the
    highest selection rate) or a group's raw value (hashed with ``segments.hash_key`` when
    ``hash`` is true, so it matches the hashed labels)."""

    source: SegmentSource = "attribute"
    field: Optional[str] = None
    hash: bool = False
    reference: str = "best"


class FairnessConfig(StrictModel):
    """Fairness across groups (``raywatch.drift.fairness``).

    * ``favourable`` (default 1): the favourable outcome, as predicted and as labelled.
    * ``prediction`` (default ``prediction``): the prediction column holding the outcome label;
      with ``threshold``, a score column turned into the label ``score >= threshold``.
    * ``score``: the column holding P(favourable), for calibration (optional).
    * ``min_group_size`` (default 30), ``confidence`` (0.95), ``four_fifths`` (0.8): as
      ``assess_fairness``'s parameters.
    * ``max_groups`` (default 20): groups kept per attribute (the rest share ``__other__``,
      which is never assessed).
    * ``default_rules`` (default true): add the rules of :func:`default_rules` for every
      configured attribute.
    """

    attributes: Dict[str, FairnessAttributeConfig] = Field(default_factory=dict, max_length=8)
    favourable: Union[StrictBool, StrictInt, str] = 1
    prediction: str = "prediction"
    score: Optional[str] = None
    threshold: Optional[float] = Field(None, gt=0, lt=1)
    min_group_size: int = Field(30, ge=1)
    confidence: float = Field(0.95, gt=0, lt=1)
    four_fifths: float = Field(0.8, gt=0, le=1)
    max_groups: int = Field(20, ge=2, le=1000)
    default_rules: bool = True


class ReplicaOutlierConfig(StrictModel):
    """``raywatch.drift.replica_outlier.find_outlier_replicas`` per deployment, version and
    window; ``default_rule`` adds ``ReplicaOutlier`` (:func:`default_rules`)."""

    enabled: bool = True
    alpha: float = Field(0.01, gt=0, lt=1)
    correction: Literal["bonferroni", "bh", "none"] = "bonferroni"
    min_effect_numerical: float = Field(0.1, ge=0)
    min_effect_categorical: float = Field(0.1, ge=0)
    min_latency_ratio: float = Field(1.25, ge=1)
    min_rows: int = Field(100, ge=1)
    default_rule: bool = True


class AttributionConfig(StrictModel):
    """Feature attribution of a prediction drift (``raywatch.drift.attribution``) and replica
    outliers. ``predictions``: the prediction columns to attribute (default: every one the
    profile holds a reference table for, ``raywatch.drift.attribution_tables.fit_reference``);
    ``min_share`` (0.1) and ``alpha`` (0.05) as ``attribute_shift``'s."""

    enabled: bool = True
    predictions: List[str] = Field(default_factory=list)
    min_share: float = Field(0.1, ge=0, le=1)
    alpha: float = Field(0.05, gt=0, lt=1)
    replicas: ReplicaOutlierConfig = Field(default_factory=ReplicaOutlierConfig)


def check_segments(cfg: Any) -> Any:
    """The cross-section check of a :class:`~raywatch.config.MonitorConfig`: a hashed
    fairness attribute needs ``segments.hash_key`` too."""
    hashed = [n for n, a in cfg.fairness.attributes.items() if a.hash]
    if hashed and cfg.segments.hash_key is None:
        raise ValueError(f"fairness.attributes {', '.join(hashed)} have hash: true; set segments.hash_key "
                         "(a ${ENV} reference)")
    return cfg


def default_rules(cfg: Any) -> List[AlertRuleConfig]:
    """The rules the segment, fairness and attribution settings of ``cfg`` (a MonitorConfig)
    add: the four-fifths rule and the equalized-odds gap for one hour per fairness attribute,
    and a replica that differs from its peers for 10 minutes.

    >>> from raywatch.config import MonitorConfig
    >>> [r.name for r in default_rules(MonitorConfig.model_validate({"fairness": {"attributes": {"sex": {}}}}))]
    ['DisparateImpact', 'EqualizedOddsGap', 'ReplicaOutlier']
    """
    out: List[AlertRuleConfig] = []
    fair = cfg.fairness
    if fair.attributes and fair.default_rules:
        out.append(AlertRuleConfig.model_validate({
            "name": "DisparateImpact", "expr": f"{series.FAIRNESS_DISPARATE_IMPACT.name} < {fair.four_fifths}",
            "for": "1h", "severity": "warning",
            "annotations": {"summary": "{{ $labels.attribute }}: a group's selection rate is {{ $value }} of the "
                                       "reference group's (four-fifths rule)"}}))
        out.append(AlertRuleConfig.model_validate({
            "name": "EqualizedOddsGap", "expr": f"{series.FAIRNESS_EQUALIZED_ODDS_DIFFERENCE.name} > 0.1",
            "for": "1h", "severity": "warning",
            "annotations": {"summary": "{{ $labels.attribute }}: true or false positive rates differ by {{ $value }} "
                                       "across groups"}}))
    rep = cfg.attribution.replicas
    if rep.enabled and rep.default_rule:
        out.append(AlertRuleConfig.model_validate({
            "name": "ReplicaOutlier", "expr": f"{series.REPLICA_OUTLIER.name} > 0", "for": "10m",
            "severity": "warning",
            "annotations": {"summary": "replica {{ $labels.replica }} differs from its peers"}}))
    return out


def with_default_rules(alerting: AlertingConfig, cfg: Any) -> AlertingConfig:
    """``alerting`` with :func:`default_rules` of ``cfg`` added, unless a rule of the same name
    is there; an alerting config with neither rules nor sinks (nothing to deliver to) is
    returned as it is.

    >>> from raywatch.config import MonitorConfig
    >>> cfg = MonitorConfig.model_validate({"alerting": {"rules": [{"name": "ReplicaOutlier",
    ...     "expr": "replica_outlier == 1"}]}})
    >>> [r.name for r in with_default_rules(cfg.alerting, cfg).rules]
    ['ReplicaOutlier']
    >>> with_default_rules(MonitorConfig().alerting, MonitorConfig()).rules
    []
    """
    if not (alerting.rules or alerting.sinks):
        return alerting
    have = {r.name for r in alerting.rules}
    extra = [r for r in default_rules(cfg) if r.name not in have]
    if not extra:
        return alerting
    return alerting.model_copy(update={"rules": [*alerting.rules, *extra]})

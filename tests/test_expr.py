import pytest

from raywatch.expr.matchers import Matcher, Selector, parse_condition, parse_matchers


@pytest.mark.parametrize("text,labels,expected", [
    ('model="fraud"', {"model": "fraud"}, True),
    ('model="fraud"', {"model": "fraud2"}, False),
    ('model!="fraud"', {"model": "churn"}, True),
    ('model!="fraud"', {}, True),
    ('model=~"fr.*"', {"model": "fraud"}, True),
    ('model=~"fr"', {"model": "fraud"}, False),           # anchored: not a substring search
    ('model=~"raud"', {"model": "fraud"}, False),
    ('model=~"a|b"', {"model": "b"}, True),
    ('model=~"a|b"', {"model": "ab"}, False),            # anchoring wraps the whole alternation
    ('model!~"fr.*"', {"model": "fraud"}, False),
    ('model!~"fr.*"', {"model": "churn"}, True),
    ('team=""', {"model": "x"}, True),                   # absent label reads as empty
    ('team=~".+"', {"model": "x"}, False),
    ("model='fraud'", {"model": "fraud"}, True),
    ('path="a\\"b"', {"path": 'a"b'}, True),
])
def test_matcher_semantics(text, labels, expected):
    assert Matcher.parse(text).matches(labels) is expected


@pytest.mark.parametrize("bad", ['model=="x"', "1abc=\"x\"", 'model=~"("', "model", 'model~"x"'])
def test_bad_matchers_raise_with_the_text(bad):
    with pytest.raises(ValueError):
        Matcher.parse(bad)


def test_selector_with_commas_and_braces_inside_values():
    sel = Selector.parse('drift_score{feature=~"a,b|c}", method="psi"}')
    assert sel.name == "drift_score"
    assert [str(m) for m in sel.matchers] == ['feature=~"a,b|c}"', 'method="psi"']
    assert sel.matches("drift_score", {"feature": "c}", "method": "psi"})
    assert not sel.matches("drift_p_value", {"feature": "c}", "method": "psi"})


def test_conditions():
    sel, op, thr = parse_condition("accuracy{model='m'} <= 8.5e-1")
    assert (sel.name, op, thr) == ("accuracy", "<=", 0.85)
    for bad in ("accuracy < ", "accuracy ~ 1", "< 1", "accuracy{model='m' < 1"):
        with pytest.raises(ValueError):
            parse_condition(bad)


def test_parse_matchers_forms():
    assert parse_matchers([]) == ()
    assert [m.op for m in parse_matchers('{a="1", b!~"2"}')] == ["=", "!~"]

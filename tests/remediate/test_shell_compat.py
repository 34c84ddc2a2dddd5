"""The Ray internals the remediation shell relies on are where it expects them."""

from raywatch.remediate.shell import compat
from raywatch.serve.compat import moved


def test_the_remediation_shells_ray_internals_have_not_moved():
    assert moved(compat.INTERNALS) == []

"""Fixtures of the stats actor's tests; helpers live in actor_helpers.py."""

from __future__ import annotations

import pytest
from actor_helpers import reference

from raywatch.stats.profile import Profile


@pytest.fixture(scope="session")
def profile() -> Profile:
    return Profile.fit(reference(), seed=0)

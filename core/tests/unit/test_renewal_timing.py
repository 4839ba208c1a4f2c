"""Renewal timing: window, fraction, day overrides, jitter bounds and stability."""

from datetime import UTC, datetime, timedelta

from certctl.db.models import RenewalPolicy
from certctl.domain.renewal_policies.timing import jitter_fraction, renewal_time

NOT_BEFORE = datetime(2026, 1, 1, tzinfo=UTC)
NOT_AFTER = NOT_BEFORE + timedelta(days=90)


def _policy(**fields):
    values = {
        "renewal_window_days": 30,
        "renew_fraction": None,
        "jitter_percent": 0,
        "auto_renew": True,
    }
    values.update(fields)
    return RenewalPolicy(**values)


def _at(policy, cert="mc-1", version=1, days=None, jitter=10):
    return renewal_time(
        certificate_id=cert,
        version=version,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        policy=policy,
        renew_before_days=days,
        default_jitter_percent=jitter,
    )


def test_without_a_policy_two_thirds_of_the_lifetime_plus_default_jitter():
    assert _at(None, jitter=0) == NOT_BEFORE + timedelta(days=60)
    at = _at(None)
    assert NOT_BEFORE + timedelta(days=60) <= at <= NOT_BEFORE + timedelta(days=63)


def test_window_fraction_and_day_override():
    assert _at(_policy()) == NOT_AFTER - timedelta(days=30)
    assert _at(_policy(renew_fraction=0.5)) == NOT_BEFORE + timedelta(days=45)
    assert _at(_policy(), days=10) == NOT_AFTER - timedelta(days=10)


def test_a_window_longer_than_the_lifetime_stops_at_half_of_it():
    assert _at(_policy(renewal_window_days=365)) == NOT_BEFORE + timedelta(days=45)


def test_auto_renew_off_means_no_renewal_time():
    assert _at(_policy(auto_renew=False)) is None


def test_jitter_spreads_stays_in_the_window_and_is_stable():
    policy = _policy(jitter_percent=20)
    times = [_at(policy, cert=f"mc-{i}") for i in range(200)]
    base = NOT_AFTER - timedelta(days=30)
    assert all(base <= t <= base + timedelta(days=6) for t in times)
    assert len(set(times)) == 200
    # Spread over the whole jitter range, not bunched at one end.
    assert min(times) < base + timedelta(days=1) and max(times) > base + timedelta(days=5)
    assert _at(policy, cert="mc-7") == times[7]
    assert _at(policy, cert="mc-7", version=2) != times[7]
    assert 0 <= jitter_fraction("mc-7", 1) < 1

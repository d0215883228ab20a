import pytest

from service.domain.job import TRANSITIONS, IllegalTransition, JobState, check_transition


@pytest.mark.parametrize("current, new", [(c, n) for c in JobState for n in TRANSITIONS[c]])
def test_allowed_transitions(current, new):
    check_transition(current, new)


@pytest.mark.parametrize(
    "current, new",
    [(JobState.succeeded, JobState.running), (JobState.failed, JobState.succeeded), (JobState.queued, JobState.succeeded),
     (JobState.cancelled, JobState.queued), (JobState.expired, JobState.succeeded)],
)
def test_illegal_transitions_are_conflicts(current, new):
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, new)
    assert info.value.status == 409

import pytest

from modelpress_core.job import IllegalTransition, JobState, check_transition

# The state machine of the design (section 5), written out here, not read from the code's own table.
Q, R, S, F, CG, CD, E = (JobState.queued, JobState.running, JobState.succeeded, JobState.failed, JobState.cancelling,
                         JobState.cancelled, JobState.expired)
ALLOWED = {
    (Q, R), (Q, CD), (Q, F),  # claimed; cancelled while queued; failed at the sweep (e.g. no worker serves it)
    (R, S), (R, F), (R, CG), (R, Q),  # finished; cancel requested; requeued after its worker was lost
    (CG, CD), (CG, F),
    (S, E), (F, E), (CD, E),
}


@pytest.mark.parametrize("current, new", sorted(ALLOWED))
def test_allowed_transitions(current, new):
    assert check_transition(current, new) is None  # no IllegalTransition raised


@pytest.mark.parametrize("current, new", [(c, n) for c in JobState for n in JobState if (c, n) not in ALLOWED])
def test_every_other_transition_is_a_conflict(current, new):
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, new)
    assert info.value.status == 409

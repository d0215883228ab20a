"""TenantJobs against a real (private) redis-server: another tenant's job is a job that does not exist.

Every read and write the API makes goes through this view, so each is tried across tenants here;
each refusal is checked to have left the other tenant's record exactly as it was.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modelpress_core.job import JobRecord, JobState, new_job_id, utcnow
from modelpress_core.storage import keys
from modelpress_core.storage.jobs import JobNotFound, JobRepository, TenantJobLimit, TenantJobs


def new_job(jobs: JobRepository, tenant: str, seconds_ago: int = 0) -> str:
    created = utcnow() - timedelta(seconds=seconds_ago)
    record = JobRecord(id=new_job_id(), tenant=tenant, spec={"steps": []}, created_at=created, updated_at=created,
                       state=JobState.queued)
    jobs.create(record)
    jobs.log(record.id, f"a line of {tenant}")
    return record.id


@pytest.fixture
def repo(private_redis):
    return JobRepository(private_redis)


@pytest.fixture
def two_tenants(repo):
    """alice has three jobs (oldest first), bob one."""
    alice = [new_job(repo, "alice", seconds_ago=30 - i) for i in range(3)]
    bob = new_job(repo, "bob")
    return TenantJobs(repo, "alice"), TenantJobs(repo, "bob"), alice, bob


def test_reads_of_another_tenants_job_are_not_found(repo, two_tenants):
    alice, _, alice_ids, bob_id = two_tenants
    assert alice.get(alice_ids[0]).tenant == "alice" and alice.exists(alice_ids[0])
    assert alice.logs(alice_ids[0])[0]["message"] == "a line of alice"
    with pytest.raises(JobNotFound):
        alice.get(bob_id)
    with pytest.raises(JobNotFound):
        alice.logs(bob_id)
    assert alice.exists(bob_id) is False and repo.exists(bob_id) is True


def test_writes_to_another_tenants_job_change_nothing(repo, private_redis, two_tenants):
    alice, bob, _, bob_id = two_tenants
    before = private_redis.get(keys.job(bob_id))
    with pytest.raises(JobNotFound):
        alice.update(bob_id, lambda r: setattr(r, "state", JobState.cancelled))
    with pytest.raises(JobNotFound):
        alice.delete(bob_id)
    with pytest.raises(JobNotFound):
        alice.keep_record_for(bob_id, 5)
    assert private_redis.get(keys.job(bob_id)) == before
    assert private_redis.ttl(keys.job(bob_id)) == -1 and private_redis.ttl(keys.job_log(bob_id)) == -1  # no expiry set
    assert [r.id for r in bob.list()[0]] == [bob_id] and bob.active_count() == 1


def test_each_tenant_updates_and_deletes_its_own(repo, private_redis, two_tenants):
    alice, bob, alice_ids, bob_id = two_tenants
    assert bob.update(bob_id, lambda r: setattr(r, "state", JobState.cancelled)).state == JobState.cancelled
    alice.delete(alice_ids[0])
    assert not repo.exists(alice_ids[0]) and [r.id for r in alice.list()[0]] == alice_ids[:0:-1]
    alice.keep_record_for(alice_ids[1], 100)
    assert 0 < private_redis.ttl(keys.job(alice_ids[1])) <= 100


def test_list_shows_only_the_tenants_jobs_newest_first(two_tenants):
    alice, bob, alice_ids, bob_id = two_tenants
    assert [r.id for r in alice.list()[0]] == alice_ids[::-1]
    assert [r.id for r in bob.list()[0]] == [bob_id]
    assert [r.id for r in TenantJobs(alice.repo, "carol").list()[0]] == []


def test_list_pages_through_the_tenants_jobs_only(two_tenants):
    alice, _, alice_ids, _ = two_tenants
    first, cursor = alice.list(limit=2)
    assert cursor is not None
    rest, _ = alice.list(limit=2, cursor=cursor)
    assert [r.id for r in first + rest] == alice_ids[::-1]


def test_list_drops_a_foreign_id_that_reaches_the_tenants_index(private_redis, two_tenants):
    alice, _, alice_ids, bob_id = two_tenants
    private_redis.zadd(keys.tenant_jobs("alice"), {bob_id: 10**15})  # newest of all in alice's index
    assert [r.id for r in alice.list()[0]] == alice_ids[::-1]


def test_list_by_state_stays_within_the_tenant(repo, two_tenants):
    alice, _, alice_ids, bob_id = two_tenants
    repo.transition(alice_ids[1], JobState.running)
    repo.transition(bob_id, JobState.running)
    assert [r.id for r in alice.list(state=JobState.running)[0]] == [alice_ids[1]]
    assert [r.id for r in alice.list(state=JobState.queued)[0]] == [alice_ids[2], alice_ids[0]]


def test_active_counts_and_limits_are_per_tenant(repo, two_tenants):
    alice, bob, alice_ids, _ = two_tenants
    assert alice.active_count() == 3 and bob.active_count() == 1
    now = utcnow()
    with pytest.raises(TenantJobLimit):
        alice.create(JobRecord(id=new_job_id(), tenant="alice", spec={}, created_at=now, updated_at=now), max_active=3)
    bob.create(JobRecord(id=new_job_id(), tenant="bob", spec={}, created_at=now, updated_at=now), max_active=3)
    assert alice.active_count() == 3 and bob.active_count() == 2
    repo.transition(alice_ids[0], JobState.cancelled)
    assert alice.active_count() == 2 and bob.active_count() == 2


def test_a_record_cannot_be_created_for_another_tenant(repo, two_tenants):
    alice, *_ = two_tenants
    now = utcnow()
    record = JobRecord(id=new_job_id(), tenant="bob", spec={}, created_at=now, updated_at=now)
    with pytest.raises(ValueError, match="created as 'alice'"):
        alice.create(record)
    assert not repo.exists(record.id)

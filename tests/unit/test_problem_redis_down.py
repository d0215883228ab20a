"""A Redis outage reaches the client as a 503 problem it can retry, never a 500."""

import redis

from service.api.problems import as_modelpress_error


def test_a_redis_error_is_503_unavailable():
    for exc in (redis.ConnectionError("Connection refused"), redis.BusyLoadingError("loading the dataset in memory")):
        problem = as_modelpress_error(exc).to_problem()
        assert (problem["status"], problem["type"]) == (503, "https://modelpress.dev/problems/unavailable"), problem


def test_any_other_unexpected_error_is_still_500():
    assert as_modelpress_error(RuntimeError("bug")).to_problem()["status"] == 500

"""`modelpress keys` never guesses where Redis is (modelpress/cli.py keys_redis_url)."""

from __future__ import annotations

import pytest

from modelpress.cli import EXIT_API_ERROR, UsageError, keys_redis_url, main
from modelpress.stack import write_private


def test_an_explicit_url_wins_then_the_environment_then_the_data_dirs_stack(tmp_path):
    (tmp_path / "redis").mkdir()
    write_private(tmp_path / "redis" / "url", "redis://:pw@127.0.0.1:7001/0\n")
    env = {"MODELPRESS_REDIS_URL": "redis://env:6379/0"}
    assert keys_redis_url("redis://flag:1/0", str(tmp_path), env) == "redis://flag:1/0"
    assert keys_redis_url(None, str(tmp_path), env) == "redis://env:6379/0"
    assert keys_redis_url(None, str(tmp_path), {}) == "redis://:pw@127.0.0.1:7001/0"
    assert keys_redis_url(None, None, {"MODELPRESS_DATA_DIR": str(tmp_path)}) == "redis://:pw@127.0.0.1:7001/0"


def test_without_any_of_them_it_refuses_instead_of_using_localhost_6379(tmp_path):
    with pytest.raises(UsageError, match="--redis-url") as caught:
        keys_redis_url(None, str(tmp_path / "empty"), {})
    assert "6379" not in str(caught.value)


def test_the_command_exits_2_with_the_reason(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MODELPRESS_REDIS_URL", raising=False)
    monkeypatch.setenv("MODELPRESS_DATA_DIR", str(tmp_path))
    assert main(["keys", "create", "--tenant", "t"]) == EXIT_API_ERROR
    err = capsys.readouterr().err
    assert "no Redis to keep the keys in" in err and str(tmp_path / "redis" / "url") in err

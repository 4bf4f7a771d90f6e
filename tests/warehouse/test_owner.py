"""The owner file of an embedded store (warehouse/owner.py): a restarted store keeps its
token, a released file names no owner, and a file naming a pid that now belongs to another
process names no owner."""

from __future__ import annotations


def test_a_store_keeps_its_token_across_restarts_and_a_released_file_names_no_owner(tmp_path) -> None:
    import json
    import os

    from warehouse.owner import claim, live_owner, owner_file, release

    path = tmp_path / "chdb"
    first = claim(path, "http://127.0.0.1:1", role="store", keep_token=True)
    assert live_owner(path) == first
    release(path, keep_token=True)  # a clean stop: no owner, the token stays for the next one
    assert live_owner(path) is None
    assert json.loads(owner_file(path).read_text())["pid"] == 0
    again = claim(path, "http://127.0.0.1:2", role="store", keep_token=True)
    assert again.token == first.token and again.url == "http://127.0.0.1:2"
    assert oct(owner_file(path).stat().st_mode & 0o777) == "0o600"
    fresh = claim(path, "http://127.0.0.1:3")  # a lone worker: a new token every start
    assert fresh.token != first.token
    release(path)
    assert not owner_file(path).exists()
    assert os.getpid() == fresh.pid


def test_an_owner_file_naming_a_reused_pid_names_no_owner(tmp_path) -> None:
    import json

    from warehouse.owner import claim, live_owner, owner_file

    path = tmp_path / "chdb"
    claim(path, "http://127.0.0.1:1", role="store")
    assert live_owner(path) is not None
    data = json.loads(owner_file(path).read_text())
    owner_file(path).write_text(json.dumps({**data, "started": "1"}))  # this pid, but another process's start
    assert live_owner(path) is None

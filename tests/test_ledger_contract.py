"""The ledger file's contract, on the filesystem alone (no AWS): what it loads, what it refuses
and how, what each change writes, and the local run lock."""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from pcls.errors import ConfigError
from pcls.ledger import REBUILD, SCHEMA, Ledger

EMPTY = {"schema": 1, "stack": "meet", "account": "", "region": "", "steps": {}}


def write(d: Path, doc: Any) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    path = d / "meet.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def refused(d: Path) -> str:
    with pytest.raises(ConfigError) as err:
        Ledger(d, "meet")
    return str(err.value)


def backup_of(path: Path) -> Path:
    [backup] = path.parent.glob(f"{path.name}.corrupt-*")
    assert re.fullmatch(re.escape(path.name) + r"\.corrupt-\d{14}", backup.name)
    assert not os.path.lexists(path)
    return backup


def test_no_directory_and_no_file_are_an_empty_ledger_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    assert Ledger(tmp_path / "absent", "meet").data == EMPTY
    assert not (tmp_path / "absent").exists()
    (tmp_path / "d").mkdir()
    ledger = Ledger(tmp_path / "d", "meet")
    assert ledger.data == EMPTY
    assert (ledger.path, ledger.lock_path) == (tmp_path / "d/meet.json", tmp_path / "d/meet.lock")
    assert list((tmp_path / "d").iterdir()) == []
    assert SCHEMA == 1


def test_a_ledger_without_account_or_region_gets_empty_ones(tmp_path: Path) -> None:
    write(tmp_path, {"schema": 1, "stack": "meet", "steps": {"vpc": {"id": "vpc-1", "x": 2}}})
    ledger = Ledger(tmp_path, "meet")
    assert ledger.data == {**EMPTY, "steps": {"vpc": {"id": "vpc-1", "x": 2}}}
    assert (ledger.id("vpc"), ledger.id("nope")) == ("vpc-1", None)
    assert ledger.get("vpc") == {"id": "vpc-1", "x": 2}
    assert ledger.get("nope") == {}


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ([1], "a JSON list, not an object"),
        ("3", "a JSON int, not an object"),
        ({**EMPTY, "schema": None}, "schema None is not a whole number"),
        ({**EMPTY, "schema": 1.0}, "schema 1.0 is not a whole number"),
        ({**EMPTY, "stack": 5}, "stack 5 is not a string"),
        ({**EMPTY, "account": None}, "account None is not a string"),
        ({**EMPTY, "region": 1}, "region 1 is not a string"),
        ({"schema": 1, "steps": {}}, "no stack"),
        ({"schema": 1, "stack": "meet"}, "steps is not an object"),
        ({**EMPTY, "steps": {"a": {"id": "x"}, "b": []}}, "steps.b is not an object"),
        ({**EMPTY, "steps": {"a": {"id": "  "}}}, "steps.a.id '  ' is not a non-empty string"),
        ({**EMPTY, "steps": {"a": {"id": ["x"]}}}, "steps.a.id ['x'] is not a non-empty string"),
        ('{"schema": 1, "stack": "meet", "ste', None),
        ("[" * 100000 + "]" * 100000, None),
    ],
)
def test_a_ledger_of_the_wrong_shape_is_moved_aside(tmp_path: Path, doc: Any, why: str) -> None:
    path = write(tmp_path, doc)
    text = path.read_text()
    message = refused(tmp_path)
    backup = backup_of(path)
    assert backup.read_text() == text
    prefix = f"{path}: unreadable ledger ("
    suffix = f"); kept as {backup.name}; {REBUILD}"
    if why is None:
        assert message.startswith(prefix) and message.endswith(suffix)
        assert len(message) > len(prefix + suffix)
    else:
        assert message == prefix + why + suffix


def test_a_ledger_that_is_not_utf8_is_moved_aside(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.write_bytes(b'{"stack": "\xff"}')
    message = refused(tmp_path)
    backup = backup_of(path)
    assert message.startswith(f"{path}: unreadable ledger ('utf-8' codec can't decode byte 0xff")
    assert message.endswith(f"); kept as {backup.name}; {REBUILD}")


def test_a_newer_schema_or_another_stack_is_refused_and_left_in_place(tmp_path: Path) -> None:
    path = write(tmp_path, {**EMPTY, "schema": 2})
    assert refused(tmp_path) == f"{path}: ledger schema 2; this pcls reads schema 1"
    write(tmp_path, {**EMPTY, "stack": "other"})
    assert refused(tmp_path) == f"{path}: ledger is for stack 'other', config says 'meet'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meet.json"]


def test_what_stands_where_the_directory_or_the_file_should_be(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("x")
    message = refused(state)
    backup = backup_of(state)
    assert message == (
        f"{state}: a file, where the ledger directory should be; kept as {backup.name}; {REBUILD}"
    )
    fifo = tmp_path / "fifo-state"
    os.mkfifo(fifo)
    message = refused(fifo)
    backup = backup_of(fifo)
    assert message == (
        f"{fifo}: not a directory, where the ledger directory should be; kept as {backup.name}; "
        f"{REBUILD}"
    )
    d = tmp_path / "d"
    (d / "meet.json").mkdir(parents=True)
    message = refused(d)
    backup = backup_of(d / "meet.json")
    assert stat.S_ISDIR(os.lstat(backup).st_mode)
    assert message == (
        f"{d / 'meet.json'}: a directory, where the ledger file should be; "
        f"kept as {backup.name}; {REBUILD}"
    )


def test_backups_are_numbered_never_replaced_and_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "strftime", lambda fmt: "20260102030405")
    for n in range(3):
        write(tmp_path, f"broken {n}")
        refused(tmp_path)
    names = {p.name: p.read_text() for p in tmp_path.glob("meet.json.corrupt-*")}
    assert names == {
        "meet.json.corrupt-20260102030405": "broken 0",
        "meet.json.corrupt-20260102030405-2": "broken 1",
        "meet.json.corrupt-20260102030405-3": "broken 2",
    }
    for n in range(4, 1000):
        (tmp_path / f"meet.json.corrupt-20260102030405-{n}").write_text("")
    path = write(tmp_path, "broken again")
    assert refused(tmp_path) == (f"{path}: too many backups of the ledger; clean up {tmp_path}")
    assert path.read_text() == "broken again"


def test_reject_moves_the_ledger_aside_and_nothing_is_written_after(tmp_path: Path) -> None:
    path = write(tmp_path, {**EMPTY, "steps": {"vpc": {"id": "sg-1"}}})
    ledger = Ledger(tmp_path, "meet")
    with pytest.raises(ConfigError) as err:
        ledger.reject("vpc", "not a vpc id")
    backup = backup_of(path)
    assert str(err.value) == (
        f"{path}: ledger entry vpc: not a vpc id; kept as {backup.name}; {REBUILD}"
    )
    ledger.record("subnet-1", {"id": "subnet-1"})
    ledger.forget("vpc")
    assert sorted(p.name for p in tmp_path.iterdir()) == [backup.name]
    assert json.loads(backup.read_text())["steps"] == {"vpc": {"id": "sg-1"}}


def test_check_target_names_what_differs(tmp_path: Path) -> None:
    path = write(tmp_path, {**EMPTY, "account": "111111111111", "region": "eu-west-1"})
    ledger = Ledger(tmp_path, "meet")
    ledger.check_target("111111111111", "eu-west-1")
    with pytest.raises(ConfigError) as err:
        ledger.check_target("222222222222", "eu-west-1")
    assert str(err.value) == (
        f"{path}: ledger is for account 111111111111, credentials point at 222222222222; "
        "switch account or move the ledger away"
    )
    with pytest.raises(ConfigError) as err:
        ledger.check_target("111111111111", "us-east-1")
    assert str(err.value) == (
        f"{path}: ledger is for region eu-west-1, credentials point at us-east-1; "
        "switch region or move the ledger away"
    )
    Ledger(tmp_path / "new", "meet").check_target("333333333333", "ap-south-1")


def test_bind_target_is_written_with_the_next_change_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "meet")
    ledger.bind_target("123456789012", "eu-central-1")
    assert not (tmp_path / "meet.json").exists()
    assert (ledger.data["account"], ledger.data["region"]) == ("123456789012", "eu-central-1")
    with pytest.raises(ConfigError):
        ledger.bind_target("999999999999", "eu-central-1")
    ledger.record("vpc", {"id": "vpc-1"})
    on_disk = json.loads((tmp_path / "meet.json").read_text())
    assert on_disk == {**EMPTY, "account": "123456789012", "region": "eu-central-1",
                       "steps": {"vpc": {"id": "vpc-1"}}}  # fmt: skip


def test_each_change_is_saved_and_a_repeated_one_is_not(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"  # made, parents too, on the first save
    ledger = Ledger(d, "meet")
    ledger.forget("vpc")  # nothing to forget: nothing written
    assert not d.exists()
    ledger.record("vpc", {"id": "vpc-1"})
    path = d / "meet.json"
    text = path.read_text()
    assert text == json.dumps({**EMPTY, "steps": {"vpc": {"id": "vpc-1"}}}, indent=2,
                              sort_keys=True) + "\n"  # fmt: skip
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    inode = os.stat(path).st_ino
    ledger.record("vpc", {"id": "vpc-1"})
    assert os.stat(path).st_ino == inode  # the same entry again: not rewritten
    ledger.record("vpc", {"id": "vpc-2"})
    assert os.stat(path).st_ino != inode
    assert Ledger(d, "meet").steps == {"vpc": {"id": "vpc-2"}}
    steps = ledger.steps
    steps["x"] = {"id": "x"}
    got = ledger.get("vpc")
    got["id"] = "changed"
    assert ledger.steps == {"vpc": {"id": "vpc-2"}}  # copies, not the ledger's own
    inode = os.stat(path).st_ino
    ledger.forget("nope")
    assert os.stat(path).st_ino == inode
    ledger.forget("vpc")
    assert json.loads(path.read_text())["steps"] == {}
    assert sorted(p.name for p in d.iterdir()) == ["meet.json"]


def test_a_save_syncs_the_file_and_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "?")
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    ledger = Ledger(tmp_path, "meet")
    ledger.record("vpc", {"id": "vpc-1"})
    assert synced == ["file", "dir"]


def test_the_run_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "s", "meet")
    other = Ledger(tmp_path / "s", "meet")
    with ledger.locked():
        assert (tmp_path / "s/meet.lock").read_text() == str(os.getpid())
        assert ledger._lock_fd is not None
        with pytest.raises(ConfigError) as err, other.locked():
            pass
        assert str(err.value) == (
            f"stack 'meet' is locked by pid {os.getpid()} ({tmp_path / 's/meet.lock'}); "
            "wait for that run to finish"
        )
    assert ledger._lock_fd is None
    assert (tmp_path / "s/meet.lock").read_text() == ""
    assert stat.S_IMODE(os.stat(tmp_path / "s/meet.lock").st_mode) == 0o600
    with other.locked():  # released: the next run takes it
        pass


def test_a_fifo_where_the_file_should_be_is_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "meet.json")
    message = refused(tmp_path)
    backup = backup_of(tmp_path / "meet.json")
    assert message == (
        f"{tmp_path / 'meet.json'}: not a regular file, where the ledger file should be; "
        f"kept as {backup.name}; {REBUILD}"
    )


def test_too_deep_json_says_why(tmp_path: Path) -> None:
    write(tmp_path, "[" * 100000 + "]" * 100000)
    assert "maximum recursion depth" in refused(tmp_path)


def test_unreadable_paths_are_config_errors_that_move_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, EMPTY)
    real_stat = os.stat

    def denied_stat(p: Any, *a: Any, **kw: Any) -> Any:
        if Path(p) == deny:
            raise PermissionError(13, "Permission denied")
        return real_stat(p, *a, **kw)

    monkeypatch.setattr(os, "stat", denied_stat)
    deny = tmp_path
    assert refused(tmp_path) == (
        f"{tmp_path}: cannot read ledger directory ([Errno 13] Permission denied)"
    )
    deny = path
    assert refused(tmp_path) == f"{path}: cannot read ledger ([Errno 13] Permission denied)"
    deny = Path("/nowhere")
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))  # fmt: skip
    assert refused(tmp_path) == f"{path}: cannot read ledger ([Errno 13] Permission denied)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meet.json"]


def test_a_ledger_that_vanishes_before_it_is_moved_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "broken")
    real = os.rename

    def vanish(src: Any, dst: Any) -> None:
        os.unlink(src)  # another process removed it first
        real(src, dst)

    monkeypatch.setattr(os, "rename", vanish)
    assert refused(tmp_path) == (
        f"{path}: unreadable ledger (Expecting value: line 1 column 1 (char 0)); "
        f"no file to keep; {REBUILD}"
    )
    write(tmp_path, "broken")

    def no_parent(src: Any, dst: Any) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(os, "rename", no_parent)
    with pytest.raises(FileNotFoundError):
        Ledger(tmp_path, "meet")


def test_reject_before_any_ledger_file_says_so(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "none", "meet")
    with pytest.raises(ConfigError) as err:
        ledger.reject("vpc", "not a vpc id")
    assert str(err.value) == (
        f"{tmp_path / 'none' / 'meet.json'}: ledger entry vpc: not a vpc id; "
        f"no ledger file was written yet; {REBUILD}"
    )


def test_bind_target_again_with_the_same_target(tmp_path: Path) -> None:
    write(tmp_path, {**EMPTY, "account": "123456789012", "region": "eu-central-1"})
    ledger = Ledger(tmp_path, "meet")
    ledger.bind_target("123456789012", "eu-central-1")
    with pytest.raises(ConfigError):
        ledger.bind_target("123456789012", "us-east-1")


def test_the_temporary_file_is_made_beside_the_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Path] = []
    real = os.replace

    def spy(src: Any, dst: Any) -> None:
        seen.append(Path(src).parent)
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    Ledger(tmp_path / "s", "meet").record("vpc", {"id": "vpc-é"})
    assert seen == [tmp_path / "s"]
    assert (tmp_path / "s" / "meet.json").read_bytes().isascii()  # JSON escapes the rest
    assert Ledger(tmp_path / "s", "meet").id("vpc") == "vpc-é"

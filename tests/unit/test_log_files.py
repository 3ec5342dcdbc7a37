"""The log folder's rules (``_core/log_files.py``) with plain values, and a node's answers to
log requests (``_runtime/node/logs.py``) over a real folder."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from ember._core import log_files as lf
from ember._protocol import messages as m
from ember._runtime.node.logs import NodeLogs


def test_worker_log_names_carry_the_worker_id_and_pid() -> None:
    name = lf.worker_log_name(bytes.fromhex("ab01"), 4242)
    assert name == "worker-ab01-4242.log"
    assert lf.parse_worker_log(name) == ("ab01", 4242)
    assert lf.parse_worker_log("node.log") is None
    assert lf.parse_worker_log("worker-ab01-4242.log.1") is None
    names = (name, "node.log", "control_store.log", "dashboard.log", "x.txt")
    assert [lf.category(n) for n in names] == [
        "worker",
        "node",
        "control_store",
        "dashboard",
        "other",
    ]


@pytest.mark.parametrize("name", ["node.log", "sub/w.log", "a..b.log"])
def test_names_inside_the_folder_are_taken(name: str) -> None:
    assert lf.check_name(name) == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("/etc/passwd", "absolute path"),
        ("../other/node.log", "outside the log folder"),
        ("a/../../x", "outside the log folder"),
        ("", "non-empty"),
        (None, "non-empty string"),
        ("a\0b", "NUL"),
    ],
)
def test_names_leading_out_of_the_folder_are_refused(name: Any, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        lf.check_name(name)


def test_tail_start_counts_lines_from_the_end_but_not_markers() -> None:
    data = b"a\nb\n:task_id:ff\nc\n"
    assert data[lf.tail_start(data, 1, True) or 0 :] == b"c\n"
    assert data[lf.tail_start(data, 2, True) or 0 :] == b"b\n:task_id:ff\nc\n"
    assert lf.tail_start(data, 9, True) == 0
    # More may come before this chunk: not enough lines in it yet.
    assert lf.tail_start(data, 3, False) is None
    assert lf.tail_start(b"x\ny", 1, False) == 2  # an unfinished last line counts


def test_complete_lines_keep_the_unfinished_rest() -> None:
    lines, rest = lf.complete_lines(b"he", b"llo\nwor")
    assert (lines, rest) == ([b"hello\n"], b"wor")
    assert lf.complete_lines(rest, b"ld\n") == ([b"world\n"], b"")


def test_task_lines_are_those_after_its_markers() -> None:
    log = [
        b"(w) before any task\n",
        lf.task_marker("aa").encode() + b"\n",
        b"(f) one\n",
        lf.task_marker("bb").encode() + b"\n",
        b"(g) other\n",
        lf.task_marker("aa").encode() + b"\n",
        b"(f) two\n",
    ]
    keep = lf.TaskLines("aa")
    assert [x for x in log if keep.keep(x)] == [b"(f) one\n", b"(f) two\n"]
    every = lf.TaskLines(None)
    assert [x for x in log if every.keep(x)] == [log[0], log[2], log[4], log[6]]
    assert lf.without_markers(b"".join(log)) == b"".join([log[0], log[2], log[4], log[6]])
    assert lf.without_markers(b"plain\n") == b"plain\n"


# ------------------------------------------------------------------ a node's answers


def _node(tmp_path: Path) -> NodeLogs:
    folder = tmp_path / "logs"
    folder.mkdir()
    hosting = SimpleNamespace(log_path=str(folder / "worker-aa-1.log"), actor_id=b"\x07")
    pool = SimpleNamespace(workers={b"w": hosting}, ended={})
    node = SimpleNamespace(
        node_id=b"\x01" * 4, log_dir=str(folder), pool=pool, state=SimpleNamespace(providers={})
    )
    return NodeLogs(cast(Any, node))


def _read(logs: NodeLogs, name: str, offset: int = 0, max_bytes: int = 100, tail: int = 0) -> Any:
    return logs.answer(
        m.ReadLog(
            rid=1, node_id=b"", name=name, offset=offset, max_bytes=max_bytes, tail_lines=tail
        )
    )


def test_a_node_lists_its_files_as_state_rows(tmp_path: Path) -> None:
    logs = _node(tmp_path)
    (tmp_path / "logs" / "worker-aa-1.log").write_text("x\n")
    (tmp_path / "logs" / "node.log").write_text("node\n")
    (tmp_path / "logs" / "sub").mkdir()
    rows = cast(Any, logs.node).state.providers["logs"](False)
    assert [
        {k: r[k] for k in ("name", "category", "size", "worker_id", "pid", "actor_id")}
        for r in rows
    ] == [
        {
            "name": "node.log",
            "category": "node",
            "size": 5,
            "worker_id": "",
            "pid": 0,
            "actor_id": "",
        },
        {
            "name": "worker-aa-1.log",
            "category": "worker",
            "size": 2,
            "worker_id": "aa",
            "pid": 1,
            "actor_id": "07",
        },
    ]
    assert {r["node_id"] for r in rows} == {"01010101"}


def test_reads_are_bounded_and_continue_from_their_offset(tmp_path: Path) -> None:
    logs = _node(tmp_path)
    (tmp_path / "logs" / "node.log").write_bytes(b"0123456789")
    first = _read(logs, "node.log", max_bytes=4)
    assert (first.data, first.offset, first.size) == (b"0123", 0, 10)  # (a longer line)
    rest = _read(logs, "node.log", offset=4, max_bytes=100)
    assert (rest.data, rest.offset) == (b"456789", 4)
    assert _read(logs, "node.log", offset=99).data == b""  # (past the end: nothing yet)
    huge = _read(logs, "node.log", max_bytes=1 << 40)
    assert huge.data == b"0123456789"  # (a request may ask for more; MAX_READ caps it)
    (tmp_path / "logs" / "node.log").write_bytes(b"ab\ncd\nef")
    assert _read(logs, "node.log", max_bytes=7).data == b"ab\ncd\n"  # (whole lines)
    assert _read(logs, "node.log", offset=6).data == b"ef"  # (the unfinished last one)


def test_a_tail_read_starts_at_a_line(tmp_path: Path) -> None:
    logs = _node(tmp_path)
    lines = b"".join(b"line %d\n" % i for i in range(10000))
    (tmp_path / "logs" / "node.log").write_bytes(lines)
    chunk = _read(logs, "node.log", tail=2, max_bytes=1 << 20)
    assert chunk.data == b"line 9998\nline 9999\n"
    assert chunk.offset == len(lines) - len(chunk.data)
    # More lines than a read may return: it starts at the first whole line within reach.
    cut = _read(logs, "node.log", tail=5000, max_bytes=100)
    assert len(lines) - 100 < cut.offset and lines[cut.offset - 1 : cut.offset] == b"\n"
    assert cut.data == lines[cut.offset :]


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("../secret", "outside the log folder"),
        ("/etc/passwd", "absolute path"),
        ("missing.log", "no log file 'missing.log'"),
        ("sub", "no log file 'sub'"),
        ("link", "outside the log folder"),
        ("pipe", "no log file 'pipe'"),
    ],
)
def test_a_node_refuses_what_is_not_a_file_of_its_folder(
    tmp_path: Path, name: str, says: str
) -> None:
    logs = _node(tmp_path)
    (tmp_path / "secret").write_text("no")
    (tmp_path / "logs" / "sub").mkdir()
    os.symlink(tmp_path / "secret", tmp_path / "logs" / "link")
    os.mkfifo(tmp_path / "logs" / "pipe")  # (opening it for reading must not block)
    answer = _read(logs, name)
    assert isinstance(answer, m.Reply) and answer.kind is m.ErrorKind.INVALID
    assert answer.error is not None and says in answer.error[1]


# ------------------------------------------------------------------ reading on the caller's side


class _File:
    """A stand-in for the cluster: one growing file, read in chunks of a few bytes (so that
    lines and markers fall across chunks), as a node answers ReadLog."""

    def __init__(self, data: bytes, chunk: int = 5) -> None:
        self.data, self.chunk = data, chunk

    def node(self, node_id: Any, node_ip: Any) -> None:
        return None

    def files(
        self, node: Any, filters: Any, glob: str = ""
    ) -> tuple[list[dict[str, Any]], list[str]]:
        return [{"node_id": "01", "name": "worker-aa-1.log", "mtime": 0.0}], []

    def read(self, node: str, name: str, offset: int, tail_lines: int) -> m.LogChunk:
        if tail_lines:
            offset = lf.tail_start(self.data, tail_lines, at_start=True) or 0
        data = self.data[offset : offset + self.chunk]
        return m.LogChunk(rid=1, data=data, offset=offset, size=len(self.data))


def _reader(f: _File, follow: bool = False, tail: int = -1, task: str | None = None) -> Any:
    from ember.util.state import logs

    which = logs._Which(None, None, "worker-aa-1.log", None, None, None, 0)
    if task is not None:
        which = which._replace(filename=None, task_id=task)
        cast(Any, f).query = lambda *a, **k: SimpleNamespace(
            rows=[{"node_id": "01", "worker_id": "aa", "attempt_number": 0}], total=1, warnings=[]
        )
    return logs._read_lines(cast(Any, f), which, follow, tail, 0.0, ("utf-8", "strict"), False)


_LOG = b"(w) idle\n:task_id:aa\n(f) one\n:task_id:bb\n(g) other\n:task_id:aa\n(f) two\nend"


def test_a_file_is_read_in_chunks_into_whole_lines_without_markers() -> None:
    assert list(_reader(_File(_LOG))) == [
        "(w) idle\n",
        "(f) one\n",
        "(g) other\n",
        "(f) two\n",
        "end",  # (the unfinished last line, once nothing more comes)
    ]
    assert list(_reader(_File(_LOG), tail=2)) == ["(f) two\n", "end"]


def test_a_task_s_lines_are_picked_across_chunks_and_tailed() -> None:
    assert list(_reader(_File(_LOG), task="aa")) == ["(f) one\n", "(f) two\n", "end"]
    assert list(_reader(_File(_LOG), task="bb")) == ["(g) other\n"]
    assert list(_reader(_File(_LOG), task="aa", tail=2)) == ["(f) two\n", "end"]


def test_follow_yields_what_is_written_later() -> None:
    f = _File(b"first\n")
    lines = _reader(f, follow=True)
    assert next(lines) == "first\n"
    f.data += b"sec"
    f.data += b"ond\n"
    assert next(lines) == "second\n"
    lines.close()

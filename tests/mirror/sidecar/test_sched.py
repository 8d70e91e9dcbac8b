"""`mirror.sidecar.sched`: the sidecar's process asks the kernel for a short CPU slice, and
`run`'s own threads move to the idle policy.

Each case runs in a subprocess, so the test process keeps the kernel's default slice.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mirror.sidecar.sched import thread_slice_ns


def in_subprocess(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.strip()


def custom_slices() -> bool:
    """Whether this kernel keeps a normal task's own slice (Linux 6.12 and later)."""
    if thread_slice_ns() is None:
        return False
    said = in_subprocess(
        "from mirror.sidecar.sched import request_slice, thread_slice_ns\n"
        "request_slice(250)\nprint(thread_slice_ns())"
    )
    return said == "250000"


needs_custom_slices = pytest.mark.skipif(
    not custom_slices(), reason="the kernel has no per-task slice for normal tasks"
)


@needs_custom_slices
def test_every_thread_asks_for_the_slice_and_threads_started_later_inherit_it() -> None:
    said = in_subprocess(
        "import os, threading\n"
        "from mirror.sidecar.sched import request_slice, thread_slice_ns\n"
        "ready, stop = threading.Event(), threading.Event()\n"
        "ids = []\n"
        "def early():\n"
        "    ids.append(threading.get_native_id()); ready.set(); stop.wait()\n"
        "first = threading.Thread(target=early); first.start(); ready.wait()\n"
        "default = thread_slice_ns()\n"
        "changed = request_slice(300)\n"
        "later = []\n"
        "t = threading.Thread(target=lambda: later.append(thread_slice_ns()))\n"
        "t.start(); t.join()\n"
        "print(changed >= 2, default != 300000, thread_slice_ns(), thread_slice_ns(ids[0]),"
        " later[0])\n"
        "request_slice(0)\n"
        "print(thread_slice_ns() == default)\n"
        "stop.set(); first.join()\n"
    )
    assert said.splitlines() == ["True True 300000 300000 300000", "True"]


@needs_custom_slices
def test_a_thread_someone_gave_another_policy_keeps_it() -> None:
    """A thread another part of the program moved off the normal policy (here SCHED_IDLE)
    is not touched: only normal threads ask for the slice."""
    said = in_subprocess(
        "import os, threading\n"
        "from mirror.sidecar.sched import request_slice, thread_slice_ns\n"
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
        "before = thread_slice_ns()\n"
        "print(request_slice(300), thread_slice_ns() == before,"
        " os.sched_getscheduler(0) == os.SCHED_IDLE)\n"
    )
    assert said == "0 True True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's")
def test_idle_threads_moves_all_but_the_kept_and_later_threads_follow() -> None:
    """`run`'s parent: every thread but the one kept (it starts the sidecar's process) runs
    `SCHED_IDLE`, a thread started afterwards by a moved one too, and a process started from
    the kept thread runs the normal policy."""
    said = in_subprocess(
        "import os, subprocess, sys, threading\n"
        "from mirror.sidecar.sched import idle_threads\n"
        "ready, stop = threading.Event(), threading.Event()\n"
        "ids, child = [], []\n"
        "def kept():\n"
        "    ids.append(threading.get_native_id()); ready.set(); stop.wait()\n"
        "    child.append(os.sched_getscheduler(0) == os.SCHED_OTHER)\n"
        "    child.append(subprocess.run([sys.executable, '-c', 'import os;"
        " print(os.sched_getscheduler(0))'], capture_output=True, text=True).stdout.strip())\n"
        "first = threading.Thread(target=kept); first.start(); ready.wait()\n"
        "moved = idle_threads(keep={ids[0]})\n"
        "later = []\n"
        "t = threading.Thread(target=lambda: later.append(os.sched_getscheduler(0)))\n"
        "t.start(); t.join()\n"
        "stop.set(); first.join()\n"
        "print(moved, os.sched_getscheduler(0) == os.SCHED_IDLE, later[0] == os.SCHED_IDLE,"
        " child[0], child[1] == str(os.SCHED_OTHER))\n"
    )
    assert said.split() == ["1", "True", "True", "True", "True"]

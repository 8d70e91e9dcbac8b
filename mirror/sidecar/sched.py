"""A short CPU time slice for the sidecar's process, so its wake-ups do not wait behind CPU work;
and the idle policy for the roles beside it in `run` (`idle_threads`).

The live path sleeps most of the time and wakes for each piece of an answer. On a machine
short of cores it often wakes on a core that is busy with CPU-bound work: the judge inside
`shadowjudge run`, or a provider's process on the same host. Linux's scheduler (EEVDF, since
6.6) lets the running task finish its time slice before a task that wakes gets the core, and
the default slice is 0.75 ms times 1 + log2(cores) (1.4 ms measured on 2 cores). Measured with a
streaming fake on 2 cores: the first content frame of a burst reached the app 1.25-1.47 ms
later through the sidecar than directly, because the sidecar read it only after the provider's
process had used its slice; with a 100 µs slice it was 0.39-0.78 ms later.

Since Linux 6.12 a normal (`SCHED_OTHER`) task may ask for its own, shorter slice through
`sched_setattr(2)`'s `sched_runtime` (clamped by the kernel to 0.1-100 ms), and a task with a
shorter slice preempts the running one when it wakes. No privilege is needed: it is not a
higher priority, the task still gets the same CPU share over time. Earlier kernels ignore the
field for normal tasks; other systems have no such call, and nothing is done. Threads started
later inherit the slice from the thread that starts them.

Python has no binding for `sched_setattr`, so this module makes the system call with ctypes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys
from collections.abc import Collection

log = logging.getLogger(__name__)

#: `sched_setattr` / `sched_getattr` by machine (the kernel's syscall tables).
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275), "arm64": (274, 275)}
_SCHED_OTHER = 0


class _SchedAttr(ctypes.Structure):
    """`struct sched_attr` (include/uapi/linux/sched/types.h), version 1 (56 bytes)."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def _syscalls() -> tuple[ctypes.CDLL, int, int] | None:
    if sys.platform != "linux":
        return None
    numbers = _SYSCALLS.get(platform.machine())
    if numbers is None:
        return None
    return ctypes.CDLL(None, use_errno=True), *numbers


def thread_slice_ns(tid: int = 0) -> int | None:
    """The slice a thread asked for, in nanoseconds (0 or the kernel default when it did not);
    None where the call is not available or a normal task's slice is not reported."""
    calls = _syscalls()
    if calls is None:
        return None
    libc, _, getattr_ = calls
    attr = _SchedAttr()
    if libc.syscall(getattr_, tid, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
        return None
    return int(attr.sched_runtime)


def request_slice(microseconds: int) -> int:
    """Ask for a `microseconds` CPU slice for every thread of this process that runs the normal
    policy (0: the kernel's default again); the number of threads changed. Failures are
    logged at debug level and leave the slice as it was: this is a latency tuning, never a
    reason not to start."""
    calls = _syscalls()
    if calls is None:
        return 0
    libc, setattr_, getattr_ = calls
    changed = 0
    for tid in _thread_ids() or [0]:
        attr = _SchedAttr()
        if libc.syscall(getattr_, tid, ctypes.byref(attr), ctypes.sizeof(attr), 0) != 0:
            continue  # a thread that ended meanwhile
        if attr.sched_policy != _SCHED_OTHER:
            continue  # someone chose another policy for it: theirs to keep
        attr.size = ctypes.sizeof(attr)
        attr.sched_flags = 0
        attr.sched_runtime = microseconds * 1000
        if libc.syscall(setattr_, tid, ctypes.byref(attr), 0) != 0:
            reason = os.strerror(ctypes.get_errno())
            log.debug("no CPU slice of %d µs for thread %d: %s", microseconds, tid, reason)
            continue
        changed += 1
    if changed:
        log.debug("sidecar threads ask for a %d µs CPU slice (%d threads)", microseconds, changed)
    return changed


def idle_threads(keep: Collection[int] = ()) -> int:
    """Move every thread of this process but `keep` (native thread ids) to `SCHED_IDLE`; the
    number moved. Threads started later by a moved thread inherit it.

    For `run`'s parent once its sidecar's process runs: any task that wakes on a core one of
    these threads holds takes the core at once (the app, the sidecar, whatever else the host
    runs), where it would often wait for the end of the running thread's slice (EEVDF's
    run-to-parity; measured, a nice value of +10 changed little). The cost is theirs: where the
    host's CPU is taken by other work, they get what it leaves (a weight of 3 against 1024).
    An unprivileged thread cannot come back from `SCHED_IDLE`, so a process this one starts
    afterwards must be started from a thread in `keep`. Where the policy does not exist
    nothing is done; a failure is logged at debug level and leaves that thread as it was."""
    if not hasattr(os, "SCHED_IDLE"):
        return 0
    moved = 0
    for _ in range(3):  # again while some moved: a thread not yet moved may have started one
        moved_now = _idle_pass(keep)
        moved += moved_now
        if not moved_now:
            break
    return moved


def _idle_pass(keep: Collection[int]) -> int:
    moved = 0
    for tid in _thread_ids():
        if tid in keep:
            continue
        try:
            if os.sched_getscheduler(tid) != os.SCHED_OTHER:
                continue  # someone chose another policy for it: theirs to keep
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except OSError as exc:  # a thread that ended meanwhile, or a refusal
            log.debug("thread %d stays at its CPU policy: %s", tid, exc)
            continue
        moved += 1
    return moved


def _thread_ids() -> list[int]:
    """The native ids of this process's threads (none where /proc cannot tell)."""
    try:
        return [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:
        return []

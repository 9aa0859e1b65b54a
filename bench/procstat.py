"""Process statistics the benchmarks share."""

from __future__ import annotations


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes and their children
    (processes that are gone or cannot be read count as nothing)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            process = psutil.Process(pid)
            for p in [process, *process.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def tree_rss(pid: int) -> int:
    """Resident memory in bytes of a process and all its children (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in processes:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total

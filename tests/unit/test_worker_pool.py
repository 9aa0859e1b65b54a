"""The stage pool: results and errors come back, and a hung or dead child is replaced."""

from __future__ import annotations

import math
import operator
import os
import time

import pytest

from streams.pool import StagePool, TaskTimeout, WorkerDied


async def test_results_and_task_errors_come_back_and_slots_survive() -> None:
    pool = StagePool(2)
    try:
        assert await pool.run(operator.add, 2, 3) == 5
        with pytest.raises(ValueError):
            await pool.run(math.sqrt, -1.0)
        assert await pool.run(operator.mul, 6, 7) == 42
        assert pool.replaced == 0
    finally:
        await pool.close()


async def test_a_task_past_its_deadline_gets_its_process_replaced() -> None:
    pool = StagePool(1)
    try:
        await pool.start()
        (before,) = pool.pids()
        with pytest.raises(TaskTimeout):
            await pool.run(time.sleep, 30, timeout=0.5)
        assert await pool.run(operator.add, 1, 1) == 2
        (after,) = pool.pids()
        assert after != before
        assert pool.replaced == 1
    finally:
        await pool.close()


async def test_a_child_that_dies_mid_task_is_replaced() -> None:
    pool = StagePool(1)
    try:
        with pytest.raises(WorkerDied):
            await pool.run(os._exit, 3)
        assert await pool.run(operator.add, 2, 2) == 4
    finally:
        await pool.close()

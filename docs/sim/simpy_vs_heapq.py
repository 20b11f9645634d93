"""SimPy vs a plain heapq event loop on the same workload (docs/SIMULATION.md, "SimPy or a
heapq loop"): 100 periodic timers, ~190,000 events. Needs simpy (not a dependency of the
package): `python -m venv /tmp/v && /tmp/v/bin/pip install simpy==4.1.2 &&
/tmp/v/bin/python docs/sim/simpy_vs_heapq.py`."""

import heapq
import itertools
import time

import simpy

N = 200_000
TIMERS = 100


def simpy_run() -> tuple[int, float]:
    """Each timer a SimPy process: wait its period, count, again."""
    env = simpy.Environment()
    count = [0]

    def proc(env: simpy.Environment, period: float):
        while True:
            yield env.timeout(period)
            count[0] += 1

    for i in range(TIMERS):
        env.process(proc(env, 1.0 + i * 0.001))
    start = time.perf_counter()
    env.run(until=N / TIMERS)
    return count[0], time.perf_counter() - start


def heap_run() -> tuple[int, float]:
    """The same timers as (time, sequence, callback, args) entries of one heapq."""
    queue: list = []
    seq = itertools.count()
    count = [0]
    now = [0.0]

    def tick(period: float) -> None:
        count[0] += 1
        heapq.heappush(queue, (now[0] + period, next(seq), tick, (period,)))

    for i in range(TIMERS):
        heapq.heappush(queue, (1.0 + i * 0.001, next(seq), tick, (1.0 + i * 0.001,)))
    start = time.perf_counter()
    while queue:
        t, _, fn, args = queue[0]
        if t > N / TIMERS:
            break
        heapq.heappop(queue)
        now[0] = t
        fn(*args)
    return count[0], time.perf_counter() - start


if __name__ == "__main__":
    for run in (simpy_run, heap_run):
        n, dt = run()
        print(run.__name__, n, f"{n / dt:,.0f} events/s")

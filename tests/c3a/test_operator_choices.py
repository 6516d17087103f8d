"""The FFT path's per-device choices (chunks, threads, GEMM form, output copy): each combination, on the CPU, equal to
the dense product in float64, and the thread sharing leaves torch's settings as it found them."""

import subprocess
import sys
import time

import pytest
import torch

from c3a_tutorial import block_circulant, block_circulant_matmul
from c3a_tutorial.c3a import block_circulant as bc

PRESETS = {
    "cpu": bc.CPU_CHOICES,
    "shared chunks": bc.SHARED_CHUNKS_CHOICES,
    "gpu": bc.GPU_CHOICES,
    "before-gpu": bc.BEFORE_GPU_CHOICES,
}
# (d_out // b, d_in // b, b): narrow and wide outputs, forward and backward, odd and even b.
SHAPES = [(9, 2, 4), (2, 9, 3), (3, 3, 5), (8, 8, 2)]


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def _check_against_dense(shape, tokens=21, scale=0.3):
    m, n, b = shape
    kernel = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    x = torch.randn(tokens, n * b, dtype=torch.float64, requires_grad=True)
    g = torch.randn(tokens, m * b, dtype=torch.float64)
    out = block_circulant_matmul(x, kernel, scale=scale)
    dense = scale * (x @ block_circulant(kernel).T)
    torch.testing.assert_close(out, dense, atol=1e-11, rtol=0)
    got_grads, want_grads = torch.autograd.grad(out, (x, kernel), g), torch.autograd.grad(dense, (x, kernel), g)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-11, rtol=0)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_equals_dense_in_small_chunks_on_two_threads(preset, shape, monkeypatch, two_threads):
    monkeypatch.setattr(bc, "_CHUNK_BYTES", 1)  # chunks of 8 rows where the preset chunks: 3 chunks, the last partial
    with bc.use_choices("cpu", PRESETS[preset]):
        assert bc.choices_for(torch.device("cpu")) == PRESETS[preset]
        _check_against_dense(shape)
    assert bc.choices_for(torch.device("cpu")) == bc.CPU_CHOICES
    assert torch.get_num_threads() == 2  # restored after every call


@pytest.mark.parametrize("preset", PRESETS)
def test_gradcheck_each_preset(preset):
    kernel = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 15, dtype=torch.float64, requires_grad=True)
    with bc.use_choices("cpu", PRESETS[preset]):
        assert torch.autograd.gradcheck(lambda x, k: block_circulant_matmul(x, k, scale=0.5), (x, kernel))


def test_gpu_choices_return_the_inputs_dtype_without_a_copy():
    kernel = torch.randn(2, 2, 8)
    x = torch.randn(5, 16, dtype=torch.bfloat16)
    expected = (x.double() @ block_circulant(kernel.double()).T).float()
    with bc.use_choices("cpu", bc.GPU_CHOICES):
        out = block_circulant_matmul(x, kernel)
    assert out.dtype == torch.bfloat16 and out.shape == (5, 16)
    torch.testing.assert_close(out.float(), expected, atol=0.05 * expected.abs().max().item(), rtol=0.02)


def test_cpu_default_shares_chunks_only_while_the_machine_is_busy(monkeypatch, two_threads):
    """Measured at 2 threads on a 2-core EPYC (data/results/README_bench.md, "Issue #28"): torch's intra-op threads
    win on a quiet machine, chunks shared among Python threads on a busy one; the CPU default follows the load."""
    assert bc.CPU_CHOICES.threads == "timed" and bc.SHARED_CHUNKS_CHOICES.threads is True
    if not bc._openmp():
        pytest.skip("torch's CPU backend is not OpenMP: the operator does not share chunks among threads")
    cpu = torch.device("cpu")
    for others, shared in ((0.0, False), (0.4, False), (1.0, True), (3.0, True)):
        monkeypatch.setattr(bc, "_others_load", lambda others=others: others)
        assert bc._busy(2) is shared and bc._busy(1) is (others > 1.5)
        assert bc._plan(4096, 768, 768, torch.float32, cpu).threads == (2 if shared else 1)
    torch.set_num_threads(1)
    assert bc._plan(4096, 768, 768, torch.float32, cpu).threads == 1  # one thread: nothing to share, whatever the load


def test_the_load_reading_subtracts_this_processs_own_work(monkeypatch):
    """A process that keeps its cores busy must not look busy to itself: its CPU time per second leaves the load."""
    clock = {"wall": 1000.0, "cpu": 0.0}
    monkeypatch.setattr(bc.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(bc.time, "process_time", lambda: clock["cpu"])
    monkeypatch.setattr(bc.os, "getloadavg", lambda: (2.0, 2.0, 2.0))
    monkeypatch.setattr(bc, "_load", {"wall": None, "cpu": 0.0, "own": 2.0, "others": 0.0})
    assert bc._loadavg_others() == 0.0  # this process ran two threads flat out for the last minute: nobody else
    clock["wall"] += 0.5  # within _LOAD_SECONDS: the reading is reused
    monkeypatch.setattr(bc.os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    assert bc._loadavg_others() == 0.0
    clock["wall"] += 600.0  # ten idle minutes later (no CPU time of ours), load 5: five others
    assert bc._loadavg_others() == pytest.approx(5.0, abs=1e-3)


def test_plan_shares_chunks_among_threads_only_where_asked(monkeypatch, two_threads):
    cpu = torch.device("cpu")
    if not bc._openmp():
        pytest.skip("torch's CPU backend is not OpenMP: the operator does not share chunks among threads")
    with bc.use_choices("cpu", bc.SHARED_CHUNKS_CHOICES):
        plan = bc._plan(4096, 768, 768, torch.float32, cpu)
        assert plan.threads == 2 and plan.rows == bc._chunk_rows(768, 768, torch.float32, cpu)
        assert plan.chunks[0] == (0, plan.rows) and plan.chunks[-1][1] == 4096
        # Few tokens: chunks shrink so that every thread gets one (at least 8 rows each).
        small = bc._plan(40, 768, 768, torch.float32, cpu)
        assert small.threads == 2 and small.rows == 20 and small.chunks == [(0, 20), (20, 40)]
        assert bc._plan(8, 768, 768, torch.float32, cpu).threads == 1
        assert bc._plan(4096, 768, 768, torch.float32, cpu, parallel=False).threads == 1
    meta = bc._plan(4096, 768, 768, torch.float32, torch.device("meta"))
    assert meta.threads == 1 and meta.chunks == [(0, 4096)]


def test_an_odd_token_count_gives_each_of_two_threads_one_chunk(two_threads):
    if not bc._openmp():
        pytest.skip("torch's CPU backend is not OpenMP: the operator does not share chunks among threads")
    with bc.use_choices("cpu", bc.SHARED_CHUNKS_CHOICES):
        plan = bc._plan(41, 768, 768, torch.float32, torch.device("cpu"))
        assert plan.threads == 2 and plan.chunks == [(0, 21), (21, 41)]
        assert [plan.chunks[i :: plan.threads] for i in range(plan.threads)] == [[(0, 21)], [(21, 41)]]
        _check_against_dense((3, 3, 5), tokens=41)  # and the two uneven chunks compute the right thing


def test_many_torch_threads_share_the_chunks_among_at_most_max_workers():
    # More workers than _MAX_WORKERS ran slower on a 16-core CPU (data/results/gpu/threads.json): they are capped,
    # and the chunks shrink to give each of those workers one, not one per torch thread.
    saved = torch.get_num_threads()
    torch.set_num_threads(16)
    try:
        with bc.use_choices("cpu", bc.SHARED_CHUNKS_CHOICES):
            plan = bc._plan(4096, 768, 768, torch.float32, torch.device("cpu"))
            few = bc._plan(64, 768, 768, torch.float32, torch.device("cpu"))
    finally:
        torch.set_num_threads(saved)
    if not bc._openmp():
        pytest.skip("torch's CPU backend is not OpenMP: the operator does not share chunks among threads")
    assert plan.threads == bc._MAX_WORKERS == 4
    assert few.threads == 4 and few.rows == 16 and len(few.chunks) == 4


def test_a_failing_worker_raises_and_restores_the_thread_count(two_threads):
    plan = bc._Plan(rows=8, chunks=[(0, 8), (8, 16), (16, 24)], threads=2)
    seen = []

    def work(chunks):
        seen.append((chunks, torch.get_num_threads(), torch.is_grad_enabled()))
        if (8, 16) in chunks:
            raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        bc._run(plan, work)
    assert torch.get_num_threads() == 2
    assert sorted(c for chunks, _, _ in seen for c in chunks) == plan.chunks
    assert all(threads == 1 and not grad for _, threads, grad in seen)  # single-threaded, never recorded


def _fake_proc(root, runnable: int, states: dict) -> str:
    (root / "loadavg").write_text(f"0.93 0.81 0.77 {runnable}/312 40321\n")
    for tid, (name, state) in states.items():
        (root / "self" / "task" / str(tid)).mkdir(parents=True)
        (root / "self" / "task" / str(tid) / "stat").write_text(f"{tid} ({name}) {state} 1 {tid} {tid} 0 -1 4194560\n")
    return str(root)


def test_others_are_the_runnable_tasks_less_this_processs_own(tmp_path):
    """Five runnable tasks, two of them threads of this process (one named with a space and parentheses, as thread
    names may be): three others. Sleeping threads of ours count for nothing."""
    states = {101: ("python", "R"), 102: ("c3a (chunks) 0", "R"), 103: ("pt_main thread", "S"), 104: ("tqdm", "D")}
    assert bc._runnable_others(_fake_proc(tmp_path, 5, states)) == 3
    assert bc._runnable_others(str(tmp_path / "nowhere")) is None  # no /proc: the caller falls back to the load


def test_a_busy_machine_counts_its_spinning_processes():
    """Two other processes that spin while the reading is taken are two runnable others (runnable counts them
    whether or not they hold a core at that moment), however busy the machine is otherwise."""
    if bc._runnable_others() is None:
        pytest.skip("no /proc on this system: the load average is used instead")
    spin = [sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"]
    children = [subprocess.Popen(spin) for _ in range(2)]
    try:
        seen, deadline = 0, time.monotonic() + 15.0  # a busy machine may be slow to start them: look for a while
        while seen < 2 and time.monotonic() < deadline:
            seen = max(seen, bc._runnable_others())
            time.sleep(0.05)
        assert seen >= 2
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_one_passing_task_does_not_make_a_quiet_machine_busy_but_a_busy_machine_is_seen_at_once(monkeypatch):
    """The 1-minute load average showed a process that had just ended as others' for a minute, and a first count
    taken alone did the same for seconds (a benchmark loop's previous process, still exiting: measured, the 2-thread
    run then shared its chunks all through). The running average starts at 0 and weighs each count by 0.2."""
    clock = {"wall": 1000.0}
    counts = iter([1, 0, 1, 0, 3, 3])  # a quiet machine with a task passing in every other count, then 3 others
    monkeypatch.setattr(bc.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(bc, "_runnable_others", lambda: next(counts))
    monkeypatch.setattr(bc, "_load", {"wall": None, "cpu": 0.0, "own": 0.0, "others": 0.0})
    monkeypatch.setattr(bc.os, "cpu_count", lambda: 2)
    averages, busy = [], []
    for _ in range(6):
        busy.append(bc._busy(2))
        averages.append(bc._load["others"])
        clock["wall"] += 0.1
        assert bc._others_load() == averages[-1]  # within _RUNNABLE_SECONDS: the count is reused, not taken again
        clock["wall"] += bc._RUNNABLE_SECONDS
    assert averages == pytest.approx([0.2, 0.16, 0.328, 0.2624, 0.80992, 1.247936])
    assert busy == [False, False, False, False, True, True]


def test_thread_times_warm_up_time_both_ways_then_follow_the_faster_and_retime_the_other():
    """The sequence of ways for one kind of call, with times fed by hand: a warm-up (not timed), one timing of each
    way, then the faster way, and every _RETIME_EVERY-th call the other; a change of state flips the choice."""
    times, kind = bc._ThreadTimes(), ("forward", 4096, 768, 768, "float32", 2)
    assert times.choose(kind) == (False, False)  # warm-up: intra-op, not timed
    assert times.choose(kind) == (False, True)  # intra-op, timed
    times.record(kind, False, 0.022)
    assert times.choose(kind) == (True, True)  # then one thread, timed
    times.record(kind, True, 0.028)
    ways = []
    for _ in range(2 * bc._RETIME_EVERY):
        one_thread, timed = times.choose(kind)
        assert timed
        ways.append(one_thread)
        times.record(kind, one_thread, 0.028 if one_thread else 0.022)
    assert ways.count(True) == 2 and ways.count(False) == 2 * bc._RETIME_EVERY - 2  # one retiming per 16 calls
    # The machine changes state: intra-op now takes 44 ms. Within a few calls the operator runs on one thread.
    for _ in range(3):
        one_thread, _ = times.choose(kind)
        times.record(kind, one_thread, 0.028 if one_thread else 0.044)
    assert times.kinds[kind]["intra-op"] > times.kinds[kind]["one thread"]
    assert times.choose(kind)[0] is True
    other = ("backward_x_w", 4096, 768, 768, "float32", 2)
    assert times.choose(other) == (False, False)  # another kind of call starts its own warm-up


def test_the_cpu_default_runs_quiet_calls_on_the_faster_way_and_keeps_the_thread_count(monkeypatch, two_threads):
    """End to end through the operator: with one thread timed faster, the calls run at one thread (seen from inside
    the work), the result still equals the dense product (float32), and torch's thread count is 2 again afterwards."""
    monkeypatch.setattr(bc, "_THREAD_TIMES", bc._ThreadTimes())
    monkeypatch.setattr(bc, "_busy", lambda threads: False)
    fake = {}  # the fake clock: a call at one thread "takes" 1 s, at two threads 5 s

    def perf_counter():
        return fake.setdefault("now", 0.0)

    real_run = bc._run

    def timed_run(plan, work):
        def counted(chunks):
            fake["now"] = fake.get("now", 0.0) + (1.0 if torch.get_num_threads() == 1 else 5.0)
            fake.setdefault("threads", []).append(torch.get_num_threads())
            return work(chunks)

        return real_run(plan, counted)

    monkeypatch.setattr(bc.time, "perf_counter", perf_counter)
    monkeypatch.setattr(bc, "_run", timed_run)
    kernel = torch.randn(3, 3, 5, requires_grad=True)
    x = torch.randn(21, 15, requires_grad=True)
    g = torch.randn(21, 15)
    dense = x.double() @ block_circulant(kernel.double()).T
    want = torch.autograd.grad(dense, (x, kernel), g.double())
    for _ in range(4):
        out = block_circulant_matmul(x, kernel, path="fft")
        torch.testing.assert_close(out.double(), dense, atol=1e-5, rtol=0)
        for got, expected in zip(torch.autograd.grad(out, (x, kernel), g), want, strict=True):
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert torch.get_num_threads() == 2
    kinds = bc.thread_timings()
    assert {kind[0] for kind in kinds} == {"forward", "backward_x_w"}
    for state in kinds.values():
        assert state["intra-op"] == 5.0 and state["one thread"] == 1.0
    # Per pass: warm-up and first timing at 2 threads, the second timing at 1, then the faster way, 1 thread.
    # Each round makes one forward and one backward call of the operator.
    forward_threads = fake["threads"][0::2]
    assert forward_threads == [2, 2, 1, 1]


def test_nothing_is_timed_where_the_choice_does_not_apply(monkeypatch, two_threads):
    """Intra-op threads asked for, one torch thread, a busy machine (chunks shared), float64 or deterministic
    algorithms asked for (one and two threads differ in the last bits): no timing, no table."""
    monkeypatch.setattr(bc, "_THREAD_TIMES", bc._ThreadTimes())
    cpu = torch.device("cpu")
    assert bc._plan(4096, 768, 768, torch.float64, cpu, pass_name="forward").timed is None
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        assert bc._plan(4096, 768, 768, torch.float32, cpu, pass_name="forward").timed is None
    finally:
        torch.use_deterministic_algorithms(deterministic)
    with bc.use_choices("cpu", bc.INTRA_OP_CHOICES):
        assert bc._plan(4096, 768, 768, torch.float32, cpu, pass_name="forward").timed is None
    monkeypatch.setattr(bc, "_busy", lambda threads: True)
    assert bc._plan(4096, 768, 768, torch.float32, cpu, pass_name="forward").timed is None
    monkeypatch.setattr(bc, "_busy", lambda threads: False)
    torch.set_num_threads(1)
    assert bc._plan(4096, 768, 768, torch.float32, cpu, pass_name="forward").timed is None
    assert bc.thread_timings() == {}
    torch.set_num_threads(2)
    bc._plan(4096, 768, 768, torch.float32, cpu, pass_name="forward")  # the warm-up: listed, not yet timed
    assert bc.thread_timings() == {
        ("forward", 4096, 768, 768, "float32", 2): {"calls": 1, "intra-op": None, "one thread": None}
    }


def test_gradcheck_passes_at_two_threads_under_the_timed_default(monkeypatch, two_threads):
    """gradcheck runs the backward twice and wants the same bits (the CI's notebook 04 failed on it when the timed
    choice alternated ways in float64): in float64 the default never switches threads, even with a table that
    would."""
    monkeypatch.setattr(bc, "_THREAD_TIMES", bc._ThreadTimes())
    monkeypatch.setattr(bc, "_busy", lambda threads: False)
    monkeypatch.setattr(bc, "_RETIME_EVERY", 2)  # every other call would take the other way, if it were timed
    kernel = torch.randn(2, 2, 8, dtype=torch.float64, requires_grad=True)
    x = torch.randn(64, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, k: block_circulant_matmul(x, k, path="fft", scale=0.5), (x, kernel))
    assert bc.thread_timings() == {}

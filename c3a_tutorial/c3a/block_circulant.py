"""Block-circulant matrices: the shape of the C3A update ``ΔW``.

A C3A kernel ``w`` has shape ``(d_out // b, d_in // b, b)``. It stands for the dense ``d_out × d_in``
matrix cut into a grid of ``b × b`` blocks, block ``(i, j)`` being ``circulant(w[i, j])`` (first
column ``w[i, j]``, as in ``scipy.linalg.circulant``)::

    ΔW = [[C(w[0, 0])    C(w[0, 1])    ...]
          [C(w[1, 0])    C(w[1, 1])    ...]
          ...                              ]

Applying it never needs the dense matrix. Cut ``x`` into ``d_in / b`` pieces ``x_j`` of length ``b``;
output piece ``i`` is ``y_i = Σ_j C(w[i, j]) x_j``. In the frequency domain every circulant is a
diagonal, so with ``X = rfft(x_j)`` and ``W = rfft(w[i, j])``::

    Y_i[f] = Σ_j W[i, j, f] · X_j[f]          (one small complex matmul per frequency f)

and ``y_i = irfft(Y_i, n=b)``. The backward pass uses the adjoint, circular *correlation*
(``conj`` in the frequency domain, see notebook 02)::

    ∂L/∂x_j[f]    = Σ_i conj(W[i, j, f]) · G_i[f]             (G = rfft of ∂L/∂y)
    ∂L/∂w[i, j]   = irfft( Σ_tokens G_i[f] · conj(X_j[f]) )

Two implementations live here. ``block_circulant_matmul_reference`` is the readable one: complex
FFTs, ``einsum``, and torch's own autograd. ``block_circulant_matmul`` is the one layers use: real
FFTs, a custom ``torch.autograd.Function`` with the backward above, which saves only the input and
the kernel (the FFTs are recomputed in backward: cheap, and no complex intermediates are kept alive
between forward and backward). On a CPU it runs over chunks of tokens that stay in cache, on torch's own threads,
and its frequency-domain products are real batched GEMMs over frequencies (see the notes above ``_chunk_rows``;
a GPU's choices are ``GPU_CHOICES``; the measured breakdown is in ``data/results/README_bench.md``).
It can also take a dense path (``path="dense"``: ``ΔW`` gathered from the kernel by one index, then GEMMs;
``dense_gather.py``), which launches far fewer ops; ``"auto"`` picks one per call by a cost model with measured
constants (``path_choice.py``: the FFT path on a CPU at the README's sizes, the dense one on a GPU until the
kernels, not the launches, set the time). Tests hold all of them equal in float64 (``tests/c3a/test_fast_path.py``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import torch

from .circulant import circulant
from .dense_gather import _grads as dense_grads
from .dense_gather import dense_gather_matmul
from .path_choice import choose_path


def _check_kernel(kernel) -> None:
    if kernel.ndim != 3:
        raise ValueError(
            f"A C3A kernel must have shape (d_out // b, d_in // b, b), got shape {tuple(kernel.shape)} "
            f"({kernel.ndim} dimensions instead of 3)."
        )


def block_circulant(kernel):
    """The dense ``(d_out, d_in)`` matrix whose block ``(i, j)`` is ``circulant(kernel[i, j])``.

    ``kernel`` has shape ``(d_out // b, d_in // b, b)``; NumPy array or torch tensor (differentiable).
    Builds ``d_out · d_in`` numbers: use it for teaching, checking and merging, not in the forward pass.
    """
    _check_kernel(kernel)
    m, n, b = kernel.shape
    if isinstance(kernel, torch.Tensor):
        blocks = circulant(kernel)  # (m, n, b, b): blocks[i, j] = C(kernel[i, j])
        return blocks.permute(0, 2, 1, 3).reshape(m * b, n * b)
    kernel = np.asarray(kernel)
    idx = (np.arange(b)[:, None] - np.arange(b)[None, :]) % b
    blocks = kernel[..., idx]
    return blocks.transpose(0, 2, 1, 3).reshape(m * b, n * b)


def _check_input(x: torch.Tensor, kernel: torch.Tensor) -> None:
    _check_kernel(kernel)
    m, n, b = kernel.shape
    if x.shape[-1] != n * b:
        raise ValueError(
            f"block_circulant_matmul: x has {x.shape[-1]} features in its last dimension but the kernel "
            f"of shape {tuple(kernel.shape)} expects d_in = (d_in // b) * b = {n} * {b} = {n * b}."
        )


def block_circulant_matmul_reference(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The readable version of ``x @ block_circulant(kernel).T``: complex FFTs and one ``einsum``.

    Differentiable through torch's own autograd. Kept as the reference the fast path is tested against.
    """
    _check_input(x, kernel)
    m, n, b = kernel.shape
    dtype = _compute_dtype(x, kernel)
    x_blocks = x.to(dtype).reshape(*x.shape[:-1], n, b)  # (..., n, b): the pieces x_j
    y_freq = torch.einsum("...jf,ijf->...if", torch.fft.fft(x_blocks), torch.fft.fft(kernel.to(dtype)))
    y_blocks = torch.fft.ifft(y_freq).real  # (..., m, b): the pieces y_i
    return y_blocks.reshape(*x.shape[:-1], m * b)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    # torch has no bfloat16 FFT and float16 FFTs only run on CUDA for power-of-two sizes: compute in
    # float32 unless something asks for float64.
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


# The fast path, and where its time goes (measured and written up in data/results/README_bench.md):
#
# * rfft returns frequencies as the last (fastest) axis, but a batched GEMM over frequencies needs them first, so
#   every activation spectrum is transposed once (``_to_freq``) and every product spectrum once back
#   (``_from_freq``). torch offers no FFT that writes a chosen layout, so these copies stay; what we can choose is
#   where they run.
# * Tokens are processed in chunks of ``_chunk_rows`` rows, so a chunk's spectrum, its frequency-major copy and its
#   product stay in cache between the FFT, the copy and the GEMM, and the chunk buffers are allocated once per call
#   and reused: a large buffer allocated per step costs page faults, not arithmetic.
# * Complex products are real GEMMs on interleaved real/imaginary parts: ``(F, k, 2p) @ (F, 2p, 2q)``, with the
#   small kernel spectrum (already multiplied by ``scale``) rewritten as a real ``(2p, 2q)`` matrix per frequency
#   (``_real_form``). The view from complex to interleaved real is free; BLAS runs real GEMMs faster than complex.
# * A GEMM whose output is narrow (fewer than ``_NARROW`` blocks) is computed transposed, which BLAS runs several
#   times faster, and transposed back in the same copy that builds the token-major layout.
# * With several torch threads, on a quiet machine every op of a chunk runs on torch's own intra-op threads (MKL's
#   FFTs, BLAS, torch's copies: C++ threads, no Python); chunks shared among Python threads were slower there, each
#   worker running ~25 Python calls per chunk under one interpreter lock (a voluntary context switch per chunk,
#   2-3x the minor page faults). On a busy machine the chunks are shared instead (``CPU_CHOICES``, ``_busy``). A quiet
#   machine can make the intra-op threads twice as slow for a while (a state one thread does not feel), so each
#   kind of call runs on them or on one thread, whichever this process timed faster lately (``_ThreadTimes``).
# * A GPU makes other choices (``Choices``, ``GPU_CHOICES``): no chunks, no transposed narrow form, no output copy.

_CHUNK_BYTES = 2 << 20  # per chunk: its input and output rows in the compute dtype (see README_bench.md)
# Workers that share the chunks, at most. On a 16-core Xeon (data/results/gpu/threads.json) the operator was fastest
# with 2-4 workers and slower with 8 and 16 (16: 2-3x the 4-worker time); each worker runs Python between its small
# ops, so they likely queue for the interpreter. With this cap 8 and 16 threads ran faster relative to the old form
# (gpu/threads_capped.json), but 16 threads were still slower than 4: not the whole cause. Torch threads beyond the
# cap stay idle inside the operator.
_MAX_WORKERS = 4
_NARROW = 8  # output blocks below which the per-frequency GEMM is computed transposed


class Choices(NamedTuple):
    """How the FFT path runs on one kind of device. Every combination computes the same thing (the tests hold each
    equal to the reference in float64); they differ in speed only, and which is faster depends on the device."""

    chunks: bool  # tokens in cache-sized chunks (CPU caches); False: all tokens at once
    # True: chunks shared among Python threads (_run); False: torch's intra-op threads; "timed": shared while the
    # machine is busy, otherwise intra-op threads or one thread, whichever this process has timed faster (_THREAD_TIMES)
    threads: bool | str
    narrow_transposed: bool  # GEMMs with fewer than _NARROW output blocks computed transposed (an MKL weakness)
    copy_output: bool  # irfft, then a copy into a preallocated output; False: the irfft's result is the output


# Threads on a CPU, measured at 2 threads on a 2-core EPYC (data/results/README_bench.md, "Issue #28"): on a quiet
# machine (load 0.5-1.3) torch's intra-op threads took 8-36 % less time than chunks shared among Python threads; on a
# busy one (load 3-4) they took 3-7x more, every op's barrier waiting for a thread that lost its core. So the CPU
# shares the chunks only while others' load leaves no idle core for its threads (_busy). On a quiet machine the
# intra-op threads were about twice as slow, for tens of seconds at a time, in a state of the machine that nothing in
# the process sets and one thread does not feel (README_bench.md, "Two states of a quiet machine"): so a quiet call
# runs on torch's threads or on one thread, whichever was timed faster for calls like it (_ThreadTimes).
CPU_CHOICES = Choices(chunks=True, threads="timed", narrow_transposed=True, copy_output=True)
SHARED_CHUNKS_CHOICES = CPU_CHOICES._replace(threads=True)  # the CPU's choices before issue #28
INTRA_OP_CHOICES = CPU_CHOICES._replace(threads=False)  # torch's own threads, whatever the load
# On a GPU there is no cache to fit and every chunk costs kernel launches, torch's thread count means nothing,
# cuBLAS has no measured weakness for narrow outputs (the transposed form costs a 4-D permuting copy there), and
# the copy into a preallocated output is one more pass over memory. BEFORE_GPU_CHOICES is what a GPU ran before
# they were separated (one chunk, the CPU's other choices), kept so that the GPU check can time both.
GPU_CHOICES = Choices(chunks=False, threads=False, narrow_transposed=False, copy_output=False)
BEFORE_GPU_CHOICES = Choices(chunks=False, threads=False, narrow_transposed=True, copy_output=True)
_CHOICES = {"cpu": CPU_CHOICES}  # by device type; any other device type gets GPU_CHOICES


def choices_for(device: torch.device) -> Choices:
    return _CHOICES.get(device.type, GPU_CHOICES)


@contextlib.contextmanager
def use_choices(device_type: str, choices: Choices):
    """Run the FFT path on ``device_type`` with ``choices`` inside the block (for tests and measurements)."""
    had, saved = device_type in _CHOICES, _CHOICES.get(device_type)
    _CHOICES[device_type] = choices
    try:
        yield
    finally:
        if had:
            _CHOICES[device_type] = saved
        else:
            del _CHOICES[device_type]


def _chunk_rows(d_in: int, d_out: int, dtype: torch.dtype, device: torch.device | None = None) -> int:
    """Tokens per chunk: ``_CHUNK_BYTES`` of input and output rows, at least 8, where the device's choices chunk
    (a CPU); elsewhere no limit."""
    if device is not None and not choices_for(device).chunks:
        return 2**62
    return max(8, _CHUNK_BYTES // ((d_in + d_out) * torch.finfo(dtype).bits // 8))


class _Plan(NamedTuple):
    rows: int  # tokens per chunk
    chunks: list[tuple[int, int]]  # (start, stop) of every chunk
    threads: int  # workers that share the chunks (1: this thread does them all)
    one_thread: bool = False  # torch at one thread for the call (chosen by _THREAD_TIMES)
    timed: tuple | None = None  # the kind of call whose time _run records in _THREAD_TIMES (None: not timed)


@functools.cache
def _openmp() -> bool:
    # _run sets torch's thread count per call; with OpenMP that is a variable, with other backends a pool resize.
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


_RUNNABLE_SECONDS = 0.2  # how long a count of runnable tasks is reused (one count reads a few /proc files)
_RUNNABLE_WEIGHT = 0.2  # each count's weight in the running average (see _others_load)
_LOAD_SECONDS = 1.0  # how long a reading of the load average is reused, where there is no /proc
_load = {"wall": None, "cpu": 0.0, "own": 0.0, "others": 0.0}  # the last reading, and this process's share


def _runnable_others(proc: str = "/proc") -> int | None:
    """Runnable tasks of other processes now (Linux): the kernel's count of runnable tasks (``/proc/loadavg``'s
    fourth field, ``runnable/all``) less this process's threads in state R. ``None`` where ``/proc`` does not say."""
    try:
        with open(os.path.join(proc, "loadavg")) as f:
            runnable = int(f.read().split()[3].split("/")[0])
        own = 0
        tasks = os.path.join(proc, "self", "task")
        for task in os.listdir(tasks):
            try:
                with open(os.path.join(tasks, task, "stat")) as f:
                    own += f.read().rpartition(")")[2].split()[0] == "R"  # the name in (...) may hold spaces
            except (OSError, IndexError):  # a thread that ended meanwhile
                continue
    except (OSError, ValueError, IndexError):
        return None
    return max(0, runnable - own)


def _others_load() -> float:
    """How many cores other work keeps busy now: the runnable tasks of other processes (``_runnable_others``), a
    running average of counts taken at most every ``_RUNNABLE_SECONDS``; where there is no ``/proc``, the 1-minute
    load average less this process's own part of it (``_loadavg_others``).

    The average starts at 0 and gives each count the weight ``_RUNNABLE_WEIGHT``, so one snapshot that catches a
    passing task (the previous process of a benchmark loop, still exiting) never makes a quiet machine look busy,
    while a busy one (two or more others) is seen within one or two counts. The load average alone misled: it
    follows the last minute, so a benchmark started right after another saw that one's load as others'
    (README_bench.md, "Threads that help")."""
    wall = time.monotonic()
    last = _load["wall"]
    if last is not None and wall - last <= _RUNNABLE_SECONDS:
        return _load["others"]
    count = _runnable_others()
    if count is None:
        return _loadavg_others()
    _load.update(wall=wall, others=(1 - _RUNNABLE_WEIGHT) * _load["others"] + _RUNNABLE_WEIGHT * count)
    return _load["others"]


def _loadavg_others() -> float:
    """The 1-minute load average less this process's own part of it: its CPU time per second, averaged over the same
    minute (the operator's own threads must not make the machine look busy to itself). For systems without
    ``/proc``."""
    wall, cpu = time.monotonic(), time.process_time()
    last = _load["wall"]
    if last is None or wall - last > _LOAD_SECONDS:
        if last is not None:
            keep = math.exp(-(wall - last) / 60.0)  # the kernel's load average decays over one minute too
            rate = (cpu - _load["cpu"]) / (wall - last)
            _load["own"] = keep * _load["own"] + (1 - keep) * rate
        try:
            load = os.getloadavg()[0]
        except OSError:  # pragma: no cover - no load average on this platform
            load = 0.0
        _load.update(wall=wall, cpu=cpu, others=max(0.0, load - _load["own"]))
    return _load["others"]


def _busy(threads: int) -> bool:
    """Whether other work leaves fewer idle cores than ``threads`` (half a core of others' load is tolerated: a quiet
    machine's background)."""
    return _others_load() + threads > (os.cpu_count() or 1) + 0.5


def _share_chunks(setting, threads: int) -> bool:
    """``Choices.threads``: True (share the chunks among Python threads), False (torch's intra-op threads) or
    ``"timed"`` (share only while the machine is busy: see the measurements beside ``CPU_CHOICES``)."""
    if setting == "timed":
        return threads > 1 and _busy(threads)
    return bool(setting)


_RETIME_EVERY = 16  # calls of one kind between two timings of the way not in use
_TIMED_KINDS = 256  # kinds of call remembered at most (then forgotten all at once)


class _ThreadTimes:
    """For each kind of call (pass, shape, tokens, dtype, threads), which of two ways ran it faster lately: torch's
    intra-op threads, or one thread (torch set to one thread for the call).

    Measured on a quiet 2-core EPYC, interleaved in one process: the same forward + backward took 22 ms on two
    intra-op threads and 28 on one, and then, for tens of seconds at a time, 44 on two while one thread and LoRA's
    GEMMs did not move (README_bench.md, "Two states of a quiet machine"). Nothing in the process chooses that state,
    so the operator times itself: the first call of a kind is a warm-up, the next two time each way once, then the
    faster way runs and every ``_RETIME_EVERY``-th call times the other again. Each time is a running mean
    (``(old + new) / 2``), so a change of state is followed within a few calls. ``thread_timings()`` shows the
    table."""

    def __init__(self):
        self.kinds: dict[tuple, dict] = {}

    def choose(self, kind: tuple) -> tuple[bool, bool]:
        """``(one_thread, timed)`` for the next call of ``kind``: which way it runs, and whether its time counts."""
        state = self.kinds.get(kind)
        if state is None:
            if len(self.kinds) >= _TIMED_KINDS:
                self.kinds.clear()
            self.kinds[kind] = {"calls": 1, "intra-op": None, "one thread": None}
            return False, False  # a warm-up: first-call costs (thread pools, FFT plans) would count against a way
        state["calls"] += 1
        intra, one = state["intra-op"], state["one thread"]
        if intra is None or one is None:
            return intra is not None, True
        faster_one = one < intra
        if state["calls"] % _RETIME_EVERY == 0:
            return not faster_one, True
        return faster_one, True

    def record(self, kind: tuple, one_thread: bool, seconds: float) -> None:
        state = self.kinds.get(kind)
        if state is not None:
            way = "one thread" if one_thread else "intra-op"
            state[way] = seconds if state[way] is None else (state[way] + seconds) / 2


_THREAD_TIMES = _ThreadTimes()


def thread_timings() -> dict:
    """The CPU path's timing table: for each kind of call ``(pass, tokens, d_in, d_out, dtype, threads)``, the
    running mean of its time in seconds on torch's intra-op threads and on one thread (``None``: not timed yet), and
    its number of calls. Which way a call takes: the faster of the two (see ``_ThreadTimes``)."""
    return {kind: dict(state) for kind, state in _THREAD_TIMES.kinds.items()}


def _plan(tokens: int, d_in: int, d_out: int, dtype, device, parallel: bool = True, pass_name: str = "") -> _Plan:
    """How a pass over ``tokens`` rows is cut into chunks, and how many threads share them (see ``_run``; at most
    ``_MAX_WORKERS``): chunks of ``_chunk_rows``, smaller if that leaves a thread without one. Not shared, under the
    ``"timed"`` setting with several torch threads: intra-op threads or one thread, as ``_THREAD_TIMES`` says for
    this ``pass_name`` and these sizes."""
    rows = min(_chunk_rows(d_in, d_out, dtype, device), max(tokens, 1))
    # Under torch.compile nothing is shared or timed: the calls that read the load, time and set threads are not
    # traceable.
    parallel = parallel and not torch.compiler.is_compiling()
    setting, torch_threads = choices_for(device).threads, torch.get_num_threads()
    share = parallel and _share_chunks(setting, torch_threads)
    threads = min(torch_threads, _MAX_WORKERS) if share and _openmp() else 1
    if threads > 1:
        rows = min(rows, max(8, -(-tokens // threads)))
    chunks = [(start, min(start + rows, tokens)) for start in range(0, tokens, rows)]
    one_thread, timed = False, None
    # Not in float64 or under torch.use_deterministic_algorithms: one and two threads sum some products in another
    # order (BLAS splits long reductions), so a call repeated on the other way differs in its last bits, and gradcheck
    # (float64) rejects a backward that is not reentrant. float64 is for checking, not for speed.
    if (
        parallel
        and setting == "timed"
        and not share
        and torch_threads > 1
        and device.type == "cpu"
        and dtype != torch.float64
        and not torch.are_deterministic_algorithms_enabled()
    ):
        kind = (pass_name, tokens, d_in, d_out, str(dtype).removeprefix("torch."), torch_threads)
        one_thread, counts = _THREAD_TIMES.choose(kind)
        timed = kind if counts else None
    return _Plan(rows, chunks, max(1, min(threads, len(chunks))), one_thread, timed)


@functools.cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    # One pool per process, kept between calls instead of threads started per call (measured a little faster, at a
    # different load: README_bench.md, "Issue #28"). Keyed by the process id: a forked child (a DataLoader worker)
    # inherits the pool object but not its threads, and would wait on them for ever.
    return ThreadPoolExecutor(workers, thread_name_prefix="c3a-chunks")


@contextlib.contextmanager
def _one_torch_thread():
    """torch at one thread inside the block, its thread count as it was afterwards (also when the block raises)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _run(plan: _Plan, work) -> None:
    """``work(chunks)`` over all of ``plan.chunks``: here, or shared among ``plan.threads`` threads.

    With several torch threads each small op of a chunk opens its own parallel region, ending in a barrier that waits
    for the slowest thread: on a busy machine, for a thread that lost its core (measured: the CPU time of a step with
    2 threads was 6× that with 1, nearly all of it spent waiting). So with ``n`` threads the chunks are shared among
    ``n`` workers, each running its chunks single-threaded with its own buffers, and the one barrier is the join at
    the end. torch's thread count is process-wide: it is 1 for the duration of the call and restored afterwards.
    """
    if plan.threads <= 1:
        start = time.perf_counter()  # the switch of threads counts against its way
        with _one_torch_thread() if plan.one_thread else contextlib.nullcontext():
            work(plan.chunks)
        if plan.timed is not None:
            _THREAD_TIMES.record(plan.timed, plan.one_thread, time.perf_counter() - start)
        return
    groups = [plan.chunks[i :: plan.threads] for i in range(plan.threads)]

    def worker(group):
        torch.set_num_threads(1)  # OpenMP's and MKL's thread counts are per thread: set this one's too
        with torch.no_grad():  # grad mode is per thread too; the operator's own ops are never recorded
            work(group)

    with _one_torch_thread():
        pool = _pool(_MAX_WORKERS - 1, os.getpid())
        futures = [pool.submit(worker, group) for group in groups[1:]]
        try:
            with torch.no_grad():
                work(groups[0])
        finally:
            for future in futures:
                future.result()


def _real_form(a: torch.Tensor) -> torch.Tensor:
    """``(F, p, q)`` complex → ``(F, 2p, 2q)`` real ``M`` with ``view_as_real(z @ a) == view_as_real(z) @ M``
    for rows ``z`` of length ``p`` (real and imaginary parts interleaved, in rows and columns)."""
    # Row (j, re) of M holds (re, im) of a[j, :], row (j, im) holds those of 1j · a[j, :] = (−im, re).
    a = a.resolve_conj()
    blocks = torch.stack((torch.view_as_real(a), torch.view_as_real(a * 1j)), 2)  # (F, p, 2, q, 2)
    return blocks.reshape(a.shape[0], 2 * a.shape[1], 2 * a.shape[2])


def _kernel_freq(kernel: torch.Tensor, dtype: torch.dtype, scale: float = 1.0) -> torch.Tensor:
    """``scale · rfft`` of every block's kernel, frequency first: ``(F, m, n)`` (small: ``m·n·F``)."""
    return (torch.fft.rfft(kernel.to(dtype), dim=-1) * scale).permute(2, 0, 1)


def _copy_transposed(out: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``out.copy_(src)`` for a contiguous 2-D ``out`` and a transposed 2-D view ``src``, through torch's general
    (TensorIterator) copy, which shares the rows among torch's threads.

    A plain 2-D ``copy_`` of a transposed view takes torch's blocked-transpose special case, which runs on one thread
    whatever the thread count. Viewing both as 3-D (a size-1 middle axis) skips it. Measured on the 2-core EPYC
    (median µs, a (12·341, 33) complex64 spectrum to frequency-major, load 1.0): 2-D 119 (1 thread) / 118 (2 threads),
    this form 92 / 52; at 1364 rows 773 / 561 against 433 / 268 (README_bench.md, "Issue #28"). Off a CPU the special
    case does not exist and the two views would be two more ops per copy (``tests/c3a/test_op_count.py``)."""
    if out.device.type != "cpu":
        return out.copy_(src)
    return out.unsqueeze(1).copy_(src.unsqueeze(1))


def _to_freq(t: torch.Tensor, b: int, buf: torch.Tensor) -> torch.Tensor:
    """``(k, p·b)`` real → ``(F, k, 2p)`` real (interleaved re/im), written into the flat complex ``buf``.

    One rfft, then one transposing copy into frequency-major order (``_copy_transposed``)."""
    k = t.shape[0]
    spectrum = torch.fft.rfft(t.reshape(k, -1, b), dim=-1)  # (k, p, F)
    n_freq = spectrum.shape[-1]
    out = buf[: spectrum.numel()].view(n_freq, -1)
    _copy_transposed(out, spectrum.view(-1, n_freq).t())
    return torch.view_as_real(out).view(n_freq, k, -1)


def _freq_matmul(t_freq, form, q: int, gemm_buf: torch.Tensor, buf: torch.Tensor, narrow_transposed: bool = True):
    """``(F, k, 2p) @ (F, 2p, 2q)`` → ``(k, q, F)`` complex, token-major, in the flat buffers.

    With ``narrow_transposed``, narrow outputs (``q < _NARROW``) are computed transposed, ``formᵀ @ t_freqᵀ``, and
    the transposing copy back to token-major order undoes it."""
    n_freq, k, _ = t_freq.shape
    out = buf[: k * q * n_freq].view(k, q, n_freq)
    if narrow_transposed and q < _NARROW:
        y_t = gemm_buf[: n_freq * 2 * q * k].view(n_freq, 2 * q, k)
        torch.bmm(form.transpose(1, 2), t_freq.transpose(1, 2), out=y_t)
        torch.view_as_real(out).copy_(y_t.view(n_freq, q, 2, k).permute(3, 1, 0, 2))
    else:
        y = gemm_buf[: n_freq * k * 2 * q].view(n_freq, k * q, 2)
        torch.bmm(t_freq, form, out=y.view(n_freq, k, 2 * q))
        _copy_transposed(out.view(k * q, n_freq), torch.view_as_complex(y).t())
    return out


def _from_freq(spectrum: torch.Tensor, b: int, out: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """``(k, q, F)`` complex → ``(k, q·b)`` real in ``dtype``: copied into ``out`` (the cast rides on the copy), or,
    with ``out=None``, the irfft's own result (cast if ``dtype`` asks)."""
    signal = torch.fft.irfft(spectrum, n=b, dim=-1)
    if out is None:
        return signal.view(spectrum.shape[0], -1).to(dtype)
    return out.copy_(signal.view(out.shape))


def _new_rows(x: torch.Tensor, width: int) -> torch.Tensor:
    return torch.empty(x.shape[0], width, dtype=x.dtype, device=x.device)


def _rows(out, start: int, stop: int):
    """Where a chunk's rows go: a slice of the preallocated output, or ``None`` (``out == [None]``: the chunk's own
    result becomes the output, see ``_store``)."""
    return None if isinstance(out, list) else out[start:stop]


def _store(out, start: int, stop: int, rows: torch.Tensor) -> None:
    if isinstance(out, list):
        out[0] = rows


def _buffers(rows: int, n_freq: int, width: int, dtype: torch.dtype, device: torch.device, count: int):
    """``count`` flat complex buffers of ``rows · width · F`` and one real GEMM buffer of twice that."""
    complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    size = rows * width * n_freq
    flat = [torch.empty(size, dtype=complex_dtype, device=device) for _ in range(count)]
    return flat, torch.empty(2 * size, dtype=dtype, device=device)


class BlockCirculantMatmul(torch.autograd.Function):
    """``y = scale · x @ block_circulant(w).T`` for ``x`` of shape ``(N, d_in)``, with an FFT-based backward.

    ``scale`` multiplies the small kernel spectrum (``m·n·F`` numbers) inside, in the compute dtype, so a float16
    input whose unscaled product would overflow float16 still gives the right (scaled) answer, and no pass over
    the activations is spent on it. Only ``x`` and the kernel are saved for backward.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        ctx.save_for_backward(x, kernel)  # only these two: everything else is recomputed in backward
        ctx.scale = scale
        dtype = _compute_dtype(x, kernel)
        m, n, b = kernel.shape
        form = _real_form(_kernel_freq(kernel, dtype, scale).transpose(1, 2))  # (F, 2n, 2m): X ↦ X Wᵀ
        plan = _plan(x.shape[0], n * b, m * b, dtype, x.device, pass_name="forward")
        choices = choices_for(x.device)
        # One chunk and no copy asked for: the irfft's result is y. Otherwise every chunk is copied into y.
        y = [None] if len(plan.chunks) == 1 and not choices.copy_output else _new_rows(x, m * b)

        def work(chunks):
            (in_buf, out_buf), gemm_buf = _buffers(plan.rows, b // 2 + 1, max(m, n), dtype, x.device, 2)
            for start, stop in chunks:
                x_freq = _to_freq(x[start:stop].to(dtype), b, in_buf)
                spectrum = _freq_matmul(x_freq, form, m, gemm_buf, out_buf, choices.narrow_transposed)
                _store(y, start, stop, _from_freq(spectrum, b, _rows(y, start, stop), x.dtype))

        _run(plan, work)
        return y[0] if isinstance(y, list) else y

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        x, kernel = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        if torch.is_grad_enabled():
            # create_graph=True: this backward is itself differentiated. The FFT path writes into buffers
            # (bmm(out=), copy_), which autograd cannot record, so the gradients are computed by the dense path's
            # formulas, made of differentiable ops (same values up to rounding).
            grad_x, grad_w = dense_grads(x, kernel, grad_output, ctx.scale, need_x, need_w)
            return grad_x, grad_w, None
        grad_output = grad_output.contiguous()  # e.g. the expanded gradient of a sum(): rows are viewed as blocks
        dtype = _compute_dtype(x, kernel)
        m, n, b = kernel.shape
        # ΔWᵀ: block (j, i) is C(w[i, j])ᵀ, a circulant whose spectrum is conj(W[i, j]).
        form = _real_form(_kernel_freq(kernel, dtype, ctx.scale).conj()) if need_x else None  # (F, 2m, 2n)
        choices = choices_for(x.device)
        # Σ_tokens of the products of interleaved parts, (F, 2n, 2m) or (F, 2m, 2n): the wider side last.
        wide_m = m >= n
        shape = (b // 2 + 1, 2 * n, 2 * m) if wide_m else (b // 2 + 1, 2 * m, 2 * n)
        plan = _plan(x.shape[0], n * b, m * b, dtype, x.device, pass_name=f"backward{'_x' * need_x}{'_w' * need_w}")
        grad_x = None
        if need_x:
            grad_x = [None] if len(plan.chunks) == 1 and not choices.copy_output else _new_rows(x, n * b)
        sums = []

        def work(chunks):
            (g_buf, x_buf, out_buf), gemm_buf = _buffers(plan.rows, b // 2 + 1, max(m, n), dtype, x.device, 3)
            products = x.new_zeros(shape, dtype=dtype) if need_w else None
            for start, stop in chunks:
                g_freq = _to_freq(grad_output[start:stop].to(dtype), b, g_buf)  # (F, k, 2m)
                if need_x:
                    spectrum = _freq_matmul(g_freq, form, n, gemm_buf, out_buf, choices.narrow_transposed)
                    _store(grad_x, start, stop, _from_freq(spectrum, b, _rows(grad_x, start, stop), x.dtype))
                if need_w:
                    x_freq = _to_freq(x[start:stop].to(dtype), b, x_buf)  # (F, k, 2n)
                    if wide_m:
                        products.baddbmm_(x_freq.transpose(1, 2), g_freq)
                    else:
                        products.baddbmm_(g_freq.transpose(1, 2), x_freq)
            sums.append(products)

        _run(plan, work)
        if isinstance(grad_x, list):
            grad_x = grad_x[0]
        if not need_w:
            return grad_x, None, None
        products = sums[0] if len(sums) == 1 else torch.stack(sums).sum(0)
        return grad_x, _kernel_grad(products, wide_m, m, n, b, ctx.scale).to(kernel.dtype), None


def _kernel_grad(products: torch.Tensor, wide_m: bool, m: int, n: int, b: int, scale: float) -> torch.Tensor:
    """``scale · irfft(Σ_tokens G_i conj(X_j))`` from the token sums of the interleaved parts' products.

    With ``G = a + ib`` and ``X = c + id``: ``G conj(X) = (ac + bd) + i(bc − ad)``."""
    n_freq = products.shape[0]
    if wide_m:  # (F, 2n, 2m) → (F, 2m, 2n)
        products = products.transpose(1, 2)
    p = products.reshape(n_freq, m, 2, n, 2)  # [f, i, re/im of G, j, re/im of X]
    spectrum = torch.complex(p[:, :, 0, :, 0] + p[:, :, 1, :, 1], p[:, :, 1, :, 0] - p[:, :, 0, :, 1])
    return torch.fft.irfft(spectrum.permute(1, 2, 0), n=b, dim=-1) * scale


PATHS = ("auto", "fft", "dense")


def _dense_matmul(x: torch.Tensor, kernel: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The dense path: ``ΔW`` gathered from the kernel, then GEMMs (``dense_gather.py``)."""
    return dense_gather_matmul(x, kernel, scale)


def block_circulant_matmul(
    x: torch.Tensor, kernel: torch.Tensor, path: str = "auto", scale: float = 1.0
) -> torch.Tensor:
    """``scale · x @ block_circulant(kernel).T``, without building the dense matrix on the FFT path.

    ``x``: ``(..., d_in)``, any layout (a transposed or expanded view works, as for ``nn.Linear``); ``kernel``:
    ``(d_out // b, d_in // b, b)``; returns ``(..., d_out)`` in ``x``'s dtype. Differentiable in both arguments
    through custom autograd functions, twice too (a backward with ``create_graph=True`` can be differentiated
    again). ``path``:

    * ``"fft"``: real FFTs and a batched GEMM over frequencies, about ``b / 2`` times fewer flops than the dense
      product; many small ops per call.
    * ``"dense"``: ``ΔW`` gathered from the kernel by one index, then GEMMs (``dense_gather.py``); a handful of
      ops per call, ``6 · N · d_in · d_out`` flops.
    * ``"auto"`` (default): whichever ``path_choice.choose_path`` estimates faster for this call's device, dtype,
      shape and token count; ``path_choice.explain_path(x, kernel)`` says which and why.

    float16/bfloat16 inputs: the FFT path computes in float32 and casts back (an FFT in half precision is missing
    or inexact); the dense path runs bfloat16 GEMMs (accumulating in float32) and float16 ones in float32. Autocast
    is switched off inside, so it is safe under ``torch.autocast``. ``scale`` (default 1) multiplies the result
    inside, in float32 or wider, so half-precision outputs do not overflow. All paths give the same result up to
    rounding (``tests/c3a/test_fast_path.py``).
    """
    _check_input(x, kernel)
    if path not in PATHS:
        raise ValueError(f"path={path!r} is not one of {PATHS}.")
    m, _, b = kernel.shape
    flat = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
    if path == "auto":
        path = choose_path(flat.device, flat.dtype, kernel.shape, flat.shape[0]).path
    if flat.shape[0] == 0:
        path = "dense"  # an empty batch: the FFT libraries reject zero-length transforms, the GEMM does not
    device_type = flat.device.type
    autocast_on = device_type in ("cuda", "cpu") and torch.is_autocast_enabled(device_type)
    with torch.autocast(device_type, enabled=False) if autocast_on else contextlib.nullcontext():
        if path == "dense":
            out = _dense_matmul(flat, kernel, scale)
        else:
            # The FFT path views rows as blocks: it needs them contiguous (a copy only for other layouts).
            out = BlockCirculantMatmul.apply(flat.contiguous(), kernel, float(scale))
    return out if x.ndim == 2 else out.reshape(*x.shape[:-1], m * b)

"""The predict stage: ONNX Runtime sessions for a bundle (provider choice; pad or pack, run, unpad)."""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
from dataclasses import dataclass, replace

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from bundle import Bundle, BundleError, check_graph_io
from bundle.packing import Buckets, pack, pool

from .openvino_session import OpenVinoGraphs
from .plan import CPU, CUDA, OPENVINO, make_plan
from .precision import FIDELITY_TEXTS, check_fidelity, choose_engine, recorded_fidelity
from .settings import Settings

log = logging.getLogger("attnserve")


@dataclass
class SequenceResult:
    """One sequence's outputs, padding removed. Embedding bundles give ``hidden`` and ``pooled``; task bundles
    ``scores`` (classify: the logits) or ``sparse`` (vocabulary ids and their weights, ids ascending)."""

    hidden: np.ndarray | None  # (n, d_model)
    pooled: np.ndarray | None  # (d_model,), the bundle's default pooling, not normalized
    attentions: np.ndarray | None  # (n_layers, h, n, n)
    scores: np.ndarray | None = None  # (n_labels,)
    sparse: tuple[np.ndarray, np.ndarray] | None = None  # (k,) int64 ids, (k,) float32 weights


@dataclass(frozen=True)
class Pair:
    """A text pair's token ids and token types (0: the first text and its special tokens, 1: the second), as
    the tokenizer's pair encoding gives them: what a cross-encoder reads."""

    ids: np.ndarray  # (n,) int64
    type_ids: np.ndarray  # (n,) int64
    tokens: list[str] | None = None  # token strings and each one's segment (0, 1, None: special), when asked
    segments: list[int | None] | None = None

    def __len__(self) -> int:
        return len(self.ids)


Sequence = np.ndarray | Pair


def _native_bf16() -> tuple[bool, str]:
    from .openvino_session import native_bf16

    return native_bf16()


def fidelity_sequences(bundle: Bundle) -> list[np.ndarray]:
    """The fidelity sentences as the bundle's tokenizer encodes them (cut at its maximum), else seeded ids."""
    if bundle.tokenizer_file is None:
        rng = np.random.default_rng(0)
        return [rng.integers(0, bundle.vocab_size, n) for n in (4, 9, 17, 33, 64)]
    tokenizer = Tokenizer.from_file(str(bundle.tokenizer_file))
    tokenizer.no_padding()
    tokenizer.enable_truncation(bundle.max_length)
    return [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(list(FIDELITY_TEXTS))]


def _cuda_devices() -> tuple[int, str]:
    """Count GPUs through the driver API without creating a session, so a CPU host logs no CUDA errors."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver (libcuda.so.1 not found)"
    count = ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0, "the NVIDIA driver found no usable GPU"
    return count.value, f"{count.value} GPU(s)"


def choose_providers(requested: str) -> tuple[list[str], str]:
    """Return the providers to use and the reason, probing CUDA only when it could work."""
    if requested == "cpu":
        return [CPU], "CPU requested"
    if CUDA not in ort.get_available_providers():
        reason = "this onnxruntime build has no CUDA execution provider"
    else:
        n, reason = _cuda_devices()
        if n:
            if hasattr(ort, "preload_dlls"):
                try:
                    ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* pip packages, when installed
                except Exception as exc:
                    reason = f"CUDA libraries failed to load ({exc})"
                    n = 0
            if n:
                return [CUDA, CPU], reason
    if requested == "cuda":
        raise BundleError(f"CUDA was requested (ATTNSERVE_PROVIDER=cuda) but {reason}")
    return [CPU], reason


def load_shared(bundle: Bundle) -> dict[str, np.ndarray]:
    """The bundle's shared tables (the token embedding), read once for every session."""
    file = bundle.shared_file
    arrays = {}
    for t in bundle.shared_tensors:
        dtype = np.dtype(t["dtype"]).newbyteorder("<")
        count = t["length"] // dtype.itemsize
        array = np.fromfile(file, dtype=dtype, count=count, offset=t["offset"]).reshape(t["shape"])
        arrays[t["name"]] = array.astype(array.dtype.newbyteorder("="), copy=False)
    return arrays


def _session_options(intra_op_threads: int, settings: Settings,
                     shared: dict[str, ort.OrtValue] | None = None, long_context: bool = False) -> ort.SessionOptions:
    options = ort.SessionOptions()
    if long_context:
        # ONNX Runtime's buffer-reuse plan keeps blocks of attention scores alive past their last use: at 8192
        # tokens (12 heads, 1024-query blocks) its peak was 4.7 GB with reuse and 1.4 GB without, 20% slower
        options.enable_mem_reuse = False
    for name, value in (shared or {}).items():
        options.add_initializer(name, value)  # one copy for every session, not one each
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = settings.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return options


class Runtime:
    """One session per graph; ``run`` pads a list of sequences, runs one call and splits the result."""

    def __init__(self, bundle: Bundle, settings: Settings) -> None:
        self.bundle = bundle
        self.task = bundle.task
        self._type_input = "token_type_ids" in bundle.serving.get("input_names", [])
        providers, reason = choose_providers(settings.provider)
        self.choice = choose_engine(settings, bundle, providers[0] == CUDA, _native_bf16)
        self._length_step, self._buckets = 1, None  # OpenVINO: fewer input shapes (a kernel set per shape)
        self.openvino: OpenVinoGraphs | None = None
        if self.choice.engine == "openvino":
            providers, reason = [OPENVINO], self.choice.reason
            self._length_step = settings.openvino_length_step
            self._buckets = Buckets() if settings.openvino_packed_buckets else None
            self.openvino = OpenVinoGraphs(bundle, settings.openvino_batch_attention)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        graphs = set(bundle.config["graphs"])
        plan = make_plan(settings, providers[0], cores, graphs)
        # On a CPU, all sessions read the shared tables from one copy (on CUDA each session holds its own on the
        # device anyway). The arrays must outlive the sessions: the OrtValues point into them.
        self.shared: dict[str, np.ndarray] = load_shared(bundle) if providers[0] == CPU else {}
        self._shared_values = {k: ort.OrtValue.ortvalue_from_numpy(a) for k, a in self.shared.items()}
        long_context = bundle.query_chunks > 1
        self._ov_streams, self._ov_threads = plan.workers, plan.threads
        options = _session_options(plan.threads, settings, self._shared_values, long_context)
        # The attention graph's outputs and intermediates grow with length^2 x layers x heads: without the arena,
        # what a long attention batch took goes back after the call instead of staying with the process.
        attention_options = _session_options(plan.threads, settings, self._shared_values)
        attention_options.enable_cpu_mem_arena = False
        attentions = self._session("attentions", attention_options, providers)
        provider = attentions.get_providers()[0]
        if provider != plan.provider:  # CUDA was chosen but failed to start: plan again for what runs
            reason = "the CUDA execution provider failed to start"
            if self.choice.precision == "fp16":
                raise BundleError(f"ATTNSERVE_PRECISION=fp16 runs only on CUDA, and {reason}: serve fp32")
            plan = make_plan(settings, provider, cores, graphs)
        self.plan = plan
        self.packed_session = self._session("packed", options, providers) if plan.batch_graph == "packed" else None
        # Its threads spin inside a call (without spinning: ~7 ms for one sentence) but stop at the end of it
        # (spinning on after the call cost a fifth of the throughput at 64 clients).
        self.lone_session: ort.InferenceSession | None = None
        if plan.lone_threads:
            lone = _session_options(plan.lone_threads, settings, self._shared_values, long_context)
            lone.add_session_config_entry("session.force_spinning_stop", "1")
            self.lone_session = self._session(plan.default_graph, lone, providers[:1] if providers[0] == OPENVINO
                                              else [CPU])
        # where single sequences run packed, the padded graph runs only lone batches: one compile (plan.py)
        padded = self.lone_session if plan.singles_packed else self._session(plan.default_graph, options, providers)
        self.sessions: dict[bool, ort.InferenceSession] = {False: padded, True: attentions}  # type: ignore[dict-item]
        if self.choice.precision != "fp32":  # measured before ready; refused below the bar
            figures = recorded_fidelity(self, fidelity_sequences(bundle), cores)
            check_fidelity(self.choice.precision, figures, settings.min_fidelity_cos)
            self.choice = replace(self.choice, fidelity=figures)
            log.info("%s fidelity against fp32: %s", self.choice.precision, figures)
        kinds = dict.fromkeys([plan.batch_graph, plan.default_graph, "attentions"])
        log.info("execution provider: %s (%s); graphs: %s; %d inference worker(s) x %d thread(s)%s%s", plan.provider,
                 reason, ", ".join(f"{k}={bundle.graph_file(k).name}" for k in kinds), plan.workers, plan.threads,
                 f"; a batch alone runs on {plan.lone_threads} threads" if plan.lone_threads else "",
                 f"; one copy of {', '.join(self.shared)} for all sessions" if self.shared else "")

    @property
    def provider(self) -> str:
        return self.plan.provider

    def _session(self, kind: str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        if providers[0] == OPENVINO:  # OpenVinoGraphs reads the graph files itself
            lone = options.intra_op_num_threads > self._ov_threads  # the lone session: one stream on every core
            session = self.openvino.session(kind, options.intra_op_num_threads, self.choice.precision,
                                            1 if lone else self._ov_streams, worker=not lone)
            check_graph_io(self.bundle, kind, session.get_inputs(), session.get_outputs())
            return session  # type: ignore[return-value]  # the part of the session API the runtime uses
        file = self.bundle.graph_file(kind)
        assert file is not None
        session = ort.InferenceSession(str(file), options, providers=providers)
        check_graph_io(self.bundle, kind, session.get_inputs(), session.get_outputs())
        return session

    def _call(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        if not self.plan.io_binding:
            return session.run(None, feeds)
        # On CUDA: inputs copied to the device once, outputs copied back once, no intermediate host copies.
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_cpu_input(name, value)
        for out in session.get_outputs():
            binding.bind_output(out.name, "cpu")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def run_alone(self, sequences: list[np.ndarray], wants_attention: bool) -> list[SequenceResult]:
        """``run`` for a batch nothing else competes with: on the all-cores session when there is one."""
        return self.run(sequences, wants_attention, alone=True)

    def run(self, sequences: list[Sequence], wants_attention: bool, alone: bool = False) -> list[SequenceResult]:
        """Pad to the longest (or pack, on the packed graph), run once, unpad. Checks that every input got exactly
        one output. Thread-safe: each inference worker calls it concurrently on the shared sessions."""
        # one sequence has no padding to save: on ONNX Runtime the padded graph (fused attention where optimized)
        # is faster; OpenVINO runs it as fast packed (plan.singles_packed)
        if not wants_attention and not alone and self.packed_session is not None and (
                len(sequences) > 1 or self.plan.singles_packed):
            return self._run_packed(sequences)  # type: ignore[arg-type]  # embedding bundles: plain ids only
        lengths = [len(s) for s in sequences]
        width = max(lengths)
        if self._length_step > 1:  # a few widths only: OpenVINO prepares kernels per input shape
            width = max(width, min(-(-width // self._length_step) * self._length_step, self.bundle.max_length))
        ids = np.full((len(sequences), width), self.bundle.pad_token_id, dtype=np.int64)
        mask, types = (np.zeros((len(sequences), width), dtype=np.int64) for _ in range(2))
        for i, seq in enumerate(sequences):
            if isinstance(seq, Pair):
                ids[i, : len(seq)], types[i, : len(seq)] = seq.ids, seq.type_ids
            else:
                ids[i, : len(seq)] = seq
            mask[i, : len(seq)] = 1
        session = self.sessions[wants_attention]
        if alone and not wants_attention and self.lone_session is not None:
            session = self.lone_session
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._type_input:
            feeds["token_type_ids"] = types
        outputs = self._call(session, feeds)
        attentions = outputs[-1] if wants_attention else None
        if self.task.kind != "embed":
            return self._task_results(outputs, lengths, attentions)
        hidden, pooled = outputs[0], outputs[1]
        if hidden.shape[0] != len(sequences) or pooled.shape[0] != len(sequences):
            raise RuntimeError(f"the graph returned {hidden.shape[0]} rows for {len(sequences)} sequences")
        return [
            SequenceResult(
                hidden=hidden[i, :n],
                pooled=pooled[i],
                attentions=None if attentions is None else attentions[i, :, :, :n, :n],
            )
            for i, n in enumerate(lengths)
        ]

    def _task_results(self, outputs: list[np.ndarray], lengths: list[int],
                      attentions: np.ndarray | None) -> list[SequenceResult]:
        """Logits per row, or the sparse graph's nonzero entries split by row (they come in row-major order)."""
        rows = len(lengths)
        scores: list[np.ndarray | None] = [None] * rows
        sparse: list[tuple[np.ndarray, np.ndarray] | None] = [None] * rows
        if self.task.kind == "classify":
            if outputs[0].shape[0] != rows:
                raise RuntimeError(f"the graph returned {outputs[0].shape[0]} rows for {rows} sequences")
            scores = list(outputs[0])
        else:
            indices, values = outputs[0], outputs[1]  # (N, 2) [row, id], (N,)
            if len(indices) and (indices[-1, 0] >= rows or np.any(np.diff(indices[:, 0]) < 0)):
                raise RuntimeError("the sparse graph's entries are not in row order within the batch")
            bounds = np.searchsorted(indices[:, 0], np.arange(rows + 1))
            sparse = [(indices[a:b, 1], values[a:b]) for a, b in itertools.pairwise(bounds)]
        return [
            SequenceResult(hidden=None, pooled=None, scores=scores[i], sparse=sparse[i],
                           attentions=None if attentions is None else attentions[i, :, :, :n, :n])
            for i, n in enumerate(lengths)
        ]

    def _run_packed(self, sequences: list[np.ndarray]) -> list[SequenceResult]:
        """One call on the packed graph; pooled vectors are computed here from the unpadded rows."""
        assert self.packed_session is not None
        feeds, offsets = pack(sequences, self._buckets)
        hidden = self._call(self.packed_session, feeds)[0]  # (T, d_model), the real tokens' rows first
        if hidden.shape[0] != len(feeds["input_ids"]):
            raise RuntimeError(f"the packed graph returned {hidden.shape[0]} rows for {len(feeds['input_ids'])} tokens")
        pooled = pool(hidden[: offsets[-1]], offsets, self.bundle.graph_pooling)  # not the extra tokens' rows
        return [
            SequenceResult(hidden=hidden[offsets[i] : offsets[i + 1]], pooled=pooled[i], attentions=None)
            for i in range(len(sequences))
        ]

    def check_vocabulary(self) -> None:
        """The last id config.json allows must have a row in the graph's token embedding; else every request with
        a high id would fail inside ONNX Runtime instead of getting a 422."""
        last = self.bundle.vocab_size - 1
        rows = self.openvino.token_rows(self.plan.default_graph) if self.openvino is not None else None
        if rows is not None and rows <= last:  # OpenVINO would embed the missing rows as zeros, not fail
            raise BundleError(f"config.json says vocab_size {self.bundle.vocab_size}, but the graph's embedding table "
                              f"has {rows} rows. Export the bundle again instead of editing config.json")
        try:
            self.run([np.array([0, last], dtype=np.int64)], False)
        except Exception as exc:
            raise BundleError(f"config.json says vocab_size {self.bundle.vocab_size}, but the graph fails on token id "
                              f"{last} ({type(exc).__name__}): its embedding table is smaller. Export the bundle "
                              "again instead of editing config.json") from None

    def warmup(self, max_batch_size: int) -> None:
        """First calls allocate and pick kernels; do them before reporting ready."""
        short = np.arange(8, dtype=np.int64) % self.bundle.vocab_size
        long = np.arange(self.bundle.max_length, dtype=np.int64) % self.bundle.vocab_size
        for wants_attention in (False, True):
            self.run([short], wants_attention)
            self.run([short] * min(max_batch_size, 8), wants_attention)
        self.run([long, short], False)
        if self.lone_session is not None:
            self.run([short], False, alone=True)
            self.run([long], False, alone=True)

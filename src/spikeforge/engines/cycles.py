"""A cycle counter for compiled loops (profiling only): ``cycles()`` reads the CPU's time-stamp
counter (LLVM ``readcyclecounter``; 0 where the target has none). The Diehl & Cook loop is built
with section timers when profiled (:func:`.dc_numba_kernel.kernel_for` with ``profile=True``); the
default loop has none (the timers are compiled out)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def cycles(typingctx):
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return types.int64(), codegen


# the sections the profiled loop times, in the order of its counters
SECTIONS = (
    "neuron updates",
    "input spikes: emission (delivery ring, pre traces, scheduling)",
    "input delivery: arrivals into g_e",
    "STDP: pre-spike updates at arrival",
    "excitatory spikes: post-spike STDP, in-flight scheduling, Ae->Ai",
    "inhibition: Ai->Ae all-but-self",
)

"""FFCV 1.0.2 mutates numba's shared type objects; this gives its memory managers their own.

The noise it caused: after any FFCV loader had run, Python printed (at a garbage collection or
at exit) `Exception ignored in: <finalize object ...> ... numba/core/dispatcher.py ... KeyError:
(Array(uint8, 1, 'C', True, aligned=True), ...)`.

The cause: `OSCacheManager.state_type` (and `ProcessCacheManager.state_type`, os_cache=False)
does `t1 = nb.uint8[::1]; t1.mutable = False`. `nb.uint8[::1]` is numba's interned type object
for a C-contiguous uint8 array, the one every compiled function uses; setting `mutable` on it
changes its key, hence its hash, in place. Every dict that already held it in a key goes stale:
the overloads of FFCV's `imdecode` dispatcher (keyed by argument types, the image bytes being
such an array), so when that dispatcher is collected its finalizer iterates its overloads and
meets a key that the dict can no longer find: KeyError. (The object's name still says
`array(uint8, 1d, C)` while its repr says read-only: the same object, changed.)

The fix: the same state types, built as read-only array types of their own
(`types.Array(dtype, ndim, "C", readonly=True)`), so no shared object is modified. What FFCV
compiles is unchanged: OSCacheManager's reader is compiled with the signature its mutation
produced (`nb.uint8[::1](nb.uint64, state_type)` is evaluated callee first, so its return type
was that same object, made read-only: a read-only uint8 slice of the memory map), now spelled
out; ProcessCacheManager's reader is typed lazily and needs no change.
"""
from __future__ import annotations


def _readonly(dtype, ndim: int):
    from numba import types

    return types.Array(dtype, ndim, "C", readonly=True)


def os_cache_state_type(self):
    from numba import types

    return types.Tuple([_readonly(types.uint8, 1), types.uint64[::1], types.uint64[::1]])


def os_cache_compile_reader(self):
    """FFCV's OSCacheManager.compile_reader with its effective signature written out."""
    import numpy as np
    from ffcv.pipeline.compiler import Compiler
    from numba import types

    def read(address, mem_state):
        size = mem_state[2][np.searchsorted(mem_state[1], address)]
        return mem_state[0][address:address + size]

    return Compiler.compile(read, _readonly(types.uint8, 1)(types.uint64, self.state_type))


def process_cache_state_type(self):
    from numba import types

    return types.Tuple([_readonly(types.uint8, 2), _readonly(types.uint64, 1), _readonly(types.uint64, 1),
                        _readonly(types.uint32, 1)])


def install() -> None:
    """Replace the two properties and the reader (idempotent); called where the backend imports FFCV."""
    from ffcv.memory_managers.os_cache import OSCacheManager
    from ffcv.memory_managers.process_cache.manager import ProcessCacheManager

    OSCacheManager.state_type = property(os_cache_state_type)
    OSCacheManager.compile_reader = os_cache_compile_reader
    ProcessCacheManager.state_type = property(process_cache_state_type)

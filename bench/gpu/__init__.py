"""Getting GPU-only pieces onto the lent GPU machine (no network there, 64 MiB per call).

dali_parts    here: download DALI 2.x (CUDA 13) and what it needs for the GPU machine's Python,
              unpack, trim, xz-compress into parts of at most ~60 MiB (under .gl/, ignored)
dali_install  there: join the parts, unpack offline into a target folder, print the
              environment (PYTHONPATH, LD_LIBRARY_PATH) under which `import nvidia.dali` works
Standard library only: the install step runs with the GPU machine's own python3.
"""

"""Instruction semantics, one module per family (see translator/registry.py)."""

# Every family module, in the order the registry imports them (their names'
# order, as a directory listing gave it before).  Listed, not discovered:
# a guest holding every descriptor made the listing come back empty, and
# every instruction untranslatable.  tests/test_package.py keeps the list
# equal to the files.
FAMILIES = (
    "aes", "avx", "binary", "bits", "bmi", "control", "dataxfer", "flagops", "logical", "mmx",
    "mmx_regs", "muldiv", "segcheck", "sha", "shift", "sse", "sse_common", "sse_convert",
    "sse_float", "sse_fpcore", "sse_int", "sse_pcmpstr", "string", "system", "x87", "x87_env",
    "x87_math", "xsave",
)

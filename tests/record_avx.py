"""Record the host CPU's outcomes of tests/test_avx_semantics.py's cases in
tests/data/avx_expected.json, the oracle of hosts without AVX2/FMA/F16C.

Run it on a host that has those features, from the checkout's root, after
changing the forms or their inputs:

    python tests/record_avx.py

(test_recording_agrees_with_host fails until the recording matches.)  Cases
this host cannot run keep their old recordings.
"""
from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
import test_avx_semantics as T  # noqa: E402


def main() -> int:
    if not N.NATIVE_YMM:
        print("this host (or BTTOOL_NATIVE_FXSAVE) gives the harness no ymm state: "
              "nothing recorded", file=sys.stderr)
        return 1
    fresh, kept = T.write_recording()
    print(f"{os.path.relpath(T.RECORDING)}: {fresh} cases recorded, "
          f"{kept} kept (this host cannot run them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

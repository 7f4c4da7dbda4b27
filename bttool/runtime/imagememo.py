"""The program images this process loaded, by file, for a guest execve of
one of them again.

busybox sh execs busybox itself for every applet it runs: reading its 2 MB
file into a new buffer and hashing it cost each command about 2 ms and a
thousand page faults (the forked child writes every page of the buffer).
An image this process, or the process it was forked from, loaded is
served from memory while its file is the same one (device, inode, size,
modification and change times: what ``cache``'s file digests trust too);
anything else is read as before (translator/loader.py), and so are the
errors.  A few images are kept, the most recently used.
"""
from __future__ import annotations

import os
import stat
from collections import OrderedDict
from typing import Callable

from bttool.translator.loader import GuestImage, load_image

LIMIT = 8
_memo: "OrderedDict[tuple[str, bool], tuple[tuple, GuestImage]]" = OrderedDict()


def load(path: str, known_info: Callable[[str], dict | None] | None = None,
         as_interpreter: bool = False) -> GuestImage:
    """translator/loader.load_image, from memory when the file is one this
    process loaded already."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return load_image(path, known_info, as_interpreter)    # which says why
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    key = (path, as_interpreter)
    hit = _memo.get(key)
    if hit is not None and hit[0] == ident and stat.S_ISREG(st.st_mode):
        _memo.move_to_end(key)
        if known_info is not None:
            known_info(hit[1].sha256)
        return hit[1]
    image = load_image(path, known_info, as_interpreter)
    _memo[key] = (ident, image)
    while len(_memo) > LIMIT:
        _memo.popitem(last=False)
    return image

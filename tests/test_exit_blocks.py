"""The exits of tier-2 code (ir/emitter.py _exit_block): a path that may
chain to the next translation gets its own write-back and chain; paths that
return to the runtime with a reason (a pending signal polled at a loop's
back edge, a fault) share one write-back.  Checked on the IR of a loop
with several back edges, where one write-back per back edge made an
interpreter's dispatch loop a third larger.  Also which callees a tier-2
region takes in, so that their calls and returns are no exits at all."""
from __future__ import annotations

import os
import sys

from llvmlite import ir

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import native as N  # noqa: E402
from bttool.runtime.window import user_options  # noqa: E402
from bttool.translator.blocks import discover_region  # noqa: E402
from bttool.translator.decoder import Decoder  # noqa: E402
from bttool.translator.lifter import lift_region  # noqa: E402


def _lift(asm: str, tier: int = 2) -> ir.Function:
    """The translation ``f`` of the region at the start of ``asm``
    (assembled at 0x1000), in its own module."""
    code, = N.assemble([asm])
    read = lambda a, n: code[a - 0x1000:a - 0x1000 + n] if 0 <= a - 0x1000 < len(code) else b""
    module = ir.Module()
    lift_region(discover_region(Decoder(64), read, 0x1000), user_options(hot_counters=tier == 1),
                module, "f")
    return module.get_global("f")


def _loop(tier: int) -> ir.Function:
    """The translation of a loop with three back edges (each polls for a
    pending signal) that leaves by a ret (an indirect jump, which may
    chain)."""
    return _lift("1: dec rax; jz 3f; test rbx, 1; jz 1b; shr rbx, 1; jc 1b; "
                 "add rcx, rbx; cmp rcx, 100; jb 1b; 3: ret", tier)


def _returning_exits(tier: int) -> int:
    """How many blocks of the loop's translation return to the runtime."""
    return sum(1 for b in _loop(tier).blocks if b.name.startswith("ret"))


def test_exits_with_a_reason_share_one_write_back():
    # tier 2: the ret's own exit, and one shared by the three polls (there
    # were five: one per poll, and the unused shared one)
    assert _returning_exits(tier=2) == 2
    # tier 1 has one exit for everything, which writes the state back and
    # returns to bt_run (whose loop finds the next translation): no chain
    tier1 = _loop(1)
    exits = [b for b in tier1.blocks if b.name == "exit"]
    assert len(exits) == 1 and str(exits[0].instructions[-1]).strip() == "ret void"
    assert not any(b.name.startswith(("chain", "ret")) for b in tier1.blocks)
    assert "musttail" not in str(tier1) and "musttail" in str(_loop(2))


def test_tier2_region_takes_in_small_leaf_callees_only():
    """A tier-2 region (follow_calls) takes in a direct callee that is a
    small leaf function, so its call and ret become branches, and leaves
    out one that calls further or is large (translator/blocks.py
    _small_leaf): those stay regions of their own."""
    big_leaf = "big: " + "; ".join(f"add rax, {i}" for i in range(120)) + "; ret"
    code, = N.assemble(["top: call leaf; call caller; call big; dec rcx; jnz top; ret; "
                        "leaf: lea rax, [rax + 1]; test rax, 1; jz 1f; inc rax; 1: ret; "
                        "caller: push rbx; call leaf; pop rbx; ret; " + big_leaf])
    read = lambda a, n: code[a - 0x1000:a - 0x1000 + n] if 0 <= a - 0x1000 < len(code) else b""
    calls = [i for i in Decoder(64).decode_all(code, 0x1000) if i.mnemonic == "call"][:3]
    leaf, caller, big = (i.operands[0].imm for i in calls)
    region = discover_region(Decoder(64), read, 0x1000, max_blocks=64, max_insns=3000,
                             follow_calls=True)
    assert leaf in region.blocks
    assert caller not in region.blocks and big not in region.blocks
    # without follow_calls (tier 1) no callee joins
    assert leaf not in discover_region(Decoder(64), read, 0x1000).blocks



def test_a_jump_table_resolved_elsewhere_joins_a_region_that_cannot_see_its_base():
    """The loop head of a switch loop (where a run or an ahead-of-time
    translation may enter) does not see the table base set up before the
    loop, so it cannot resolve the table itself; discovery resolved it in
    the region from the function entry (``site_targets``) and hands it on
    (``known_tables``): the cases join the loop head's region."""
    from bttool.translator.discovery import discover
    code, = N.assemble(["lea rdi, [rip + table]; "
                        "loop: movzx eax, byte ptr [rsi]; inc rsi; cmp eax, 3; ja loop; "
                        "movsxd rax, dword ptr [rdi + rax*4]; add rax, rdi; jmp rax; "
                        "c0: add rbx, 1; jmp loop; c1: sub rbx, 2; jmp loop; "
                        "c2: xor rbx, 5; jmp loop; c3: ret; "
                        "table: .long c0 - table, c1 - table, c2 - table, c3 - table"])
    read = lambda a, n: code[a - 0x1000:a - 0x1000 + n] if 0 <= a - 0x1000 < len(code) else b""
    insns = list(Decoder(64).decode_all(code, 0x1000))
    loop = insns[1].address
    jump = next(i.address for i in insns if i.mnemonic == "jmp" and i.op_str == "rax")
    disc = discover(read, [0x1000], lambda a: 0x1000 <= a < 0x1000 + len(code), read_data=read)
    cases = disc.site_targets[jump]
    assert len(cases) == 4
    alone = discover_region(Decoder(64), read, loop, read_data=read, max_blocks=64)
    assert not set(cases) & set(alone.blocks)
    told = discover_region(Decoder(64), read, loop, read_data=read, max_blocks=64,
                           known_tables=disc.site_targets.get)
    assert set(cases) <= set(told.blocks)


def test_a_chain_between_units_saves_no_registers():
    """Units use the preserve_none convention (ir/unitabi.py): a tier-2
    loop that keeps every guest register busy, more than the host's
    caller-saved registers hold, pushes no rbx or r12-r15 at entry and
    pops none before its chaining tail call (under the C convention it
    saved all five), and takes the CPU state in r13 (mem in r12)."""
    import capstone

    from bttool.ir import codegen, objfile
    fn = _lift("1: add rax, rbx; add rcx, rdx; add rsi, rdi; add r8, r9; add r10, r11; "
               "add r12, r13; add r14, r15; imul rbx, rcx; imul rdx, rsi; imul rdi, r8; "
               "imul r9, r10; imul r11, r12; imul r13, r14; xor r15, rax; dec rbp; jnz 1b; ret")
    data, _ = codegen.compile_module(fn.module, codegen.host_target(2))
    host = objfile.symbol_code(data, objfile.symbols(data)["f"])
    insns = [f"{i.mnemonic} {i.op_str}" for i in
             capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64).disasm(host, 0)]
    saved = [i for i in insns if i.split()[0] in ("push", "pop")
             and i.split()[1] in ("rbx", "r12", "r13", "r14", "r15")]
    assert saved == [], saved
    assert any("[r13 + " in i for i in insns)                       # the state
    assert any(i.startswith("jmp r") for i in insns)                # the chain: a jump


def test_an_exit_writes_back_only_what_its_paths_changed():
    """Each exit of tier-2 code writes back the fields stored on some path
    to it (ir/writeback.py), not every field the function changes: of two
    returns, the one reached without `inc rbx` stores no rbx, the other
    does; both store rsp (the ret) and rip."""
    from bttool.ir.state import FIELDS
    fn = _lift("test rax, rax; jz 1f; inc rbx; ret; 1: ret")
    exits = [b for b in fn.blocks if b.name.startswith("exit") and "ret" not in b.name]
    geps = {i.get_reference(): i for i in fn.blocks[0].instructions if i.opname == "getelementptr"}
    offsets = {ref: int(str(g).rsplit("i64 ", 1)[1].split()[0]) for ref, g in geps.items()}
    written = []        # the state offsets each exit stores to
    for b in exits:
        refs = [i.operands[1].get_reference() for i in b.instructions if i.opname == "store"]
        written.append({offsets[r] for r in refs if r in offsets})
    rbx, rsp, rip = FIELDS["rbx"].offset, FIELDS["rsp"].offset, FIELDS["rip"].offset
    written = [w for w in written if rip in w]          # the two returns' exits
    assert len(written) == 2
    assert all(rsp in w for w in written)
    assert sorted(rbx in w for w in written) == [False, True]

"""The decode table of VEX-encoded vector instructions, in the Intel
manual's notation (SDM vol. 2, appendix A: opcode maps and operand forms).

One row per opcode form: ``"PP.MAP[.W0|.W1][.LIG|.L0|.L1] OP [/digit]"``
(the mandatory prefix 66/F3/F2 or none, the opcode map 0F/0F38/0F3A, and
VEX.W or VEX.L where the form needs one), the
mnemonic with its operands as the opcode map writes them, the semantic,
and the CPUID feature the model must advertise (``AVX/AVX2``: VEX.128 needs
AVX, VEX.256 AVX2).  Operand forms (appendix A.2):

* the letter says where the operand is encoded: V = ModRM.reg (vector),
  H = VEX.vvvv (vector), W = ModRM.r/m (vector register or memory),
  U = r/m (vector register only), M = r/m (memory only), L = the vector
  register in imm8[7:4], G = ModRM.reg (GPR), E/R = r/m (GPR or memory /
  GPR only), I = immediate;
* the size: x = 128 or 256 bits by VEX.L, dq = 128 (VEX.L must be 0), qq =
  256 (VEX.L must be 1), ss/sd/d/q/w/b = a scalar (VEX.L ignored).

A row's semantic is either the legacy SSE instruction it extends (by its
mnemonic: the SSE semantic runs on the operands as VEX gives them,
translator/vex.py VexInsn), or a function of semantics/avx.py.  Operand
fetch and write-back are the same for every row (semantics/sse_common.py
``rd``/``wr``): a VEX write zeroes the destination above the operation's
width, a legacy SSE write leaves it.  A 256-bit form of an SSE semantic
that is not written for any width runs once per 128-bit lane, which is how
AVX defines those instructions.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from bttool.translator import registry
from bttool.translator.cpumodel import CpuModel
from bttool.translator.vex import Vex

SemanticFn = Callable[..., None]

AVX, AVX2, AVX_AVX2 = "AVX", "AVX2", "AVX/AVX2"
FMA, F16C = "FMA", "F16C"
AVX_AES, AVX_PCLMUL = "AVX+AES", "AVX+PCLMUL"

# encoding                  mnemonic and operands              semantic        feature
ROWS: tuple[tuple[str, str, str | None, str], ...] = (
    # -- moves ---------------------------------------------------------------------
    ("0F 10 /r",              "vmovups Vx,Wx",                   "movups",       AVX),
    ("0F 11 /r",              "vmovups Wx,Vx",                   "movups",       AVX),
    ("66.0F 10 /r",           "vmovupd Vx,Wx",                   "movupd",       AVX),
    ("66.0F 11 /r",           "vmovupd Wx,Vx",                   "movupd",       AVX),
    ("0F 28 /r",              "vmovaps Vx,Wx",                   "movaps",       AVX),
    ("0F 29 /r",              "vmovaps Wx,Vx",                   "movaps",       AVX),
    ("66.0F 28 /r",           "vmovapd Vx,Wx",                   "movapd",       AVX),
    ("66.0F 29 /r",           "vmovapd Wx,Vx",                   "movapd",       AVX),
    ("66.0F 6F /r",           "vmovdqa Vx,Wx",                   "movdqa",       AVX),
    ("66.0F 7F /r",           "vmovdqa Wx,Vx",                   "movdqa",       AVX),
    ("F3.0F 6F /r",           "vmovdqu Vx,Wx",                   "movdqu",       AVX),
    ("F3.0F 7F /r",           "vmovdqu Wx,Vx",                   "movdqu",       AVX),
    ("F2.0F F0 /r",           "vlddqu Vx,Mx",                    "lddqu",        AVX),
    ("66.0F E7 /r",           "vmovntdq Mx,Vx",                  "movntdq",      AVX),
    ("0F 2B /r",              "vmovntps Mx,Vx",                  "movntps",      AVX),
    ("66.0F 2B /r",           "vmovntpd Mx,Vx",                  "movntpd",      AVX),
    ("66.0F38 2A /r",         "vmovntdqa Vx,Mx",                 "movntdqa",     AVX_AVX2),
    ("66.0F.W0 6E /r",        "vmovd Vdq,Ed",                    "movd",         AVX),
    ("66.0F.W1 6E /r",        "vmovq Vdq,Eq",                    "movq",         AVX),
    ("66.0F.W0 7E /r",        "vmovd Ed,Vdq",                    "movd",         AVX),
    ("66.0F.W1 7E /r",        "vmovq Eq,Vdq",                    "movq",         AVX),
    ("F3.0F 7E /r",           "vmovq Vdq,Wq",                    "movq",         AVX),
    ("66.0F D6 /r",           "vmovq Wq,Vdq",                    "movq",         AVX),
    ("F3.0F.LIG 10 /r",       "vmovss Vdq,Hdq,Uss",              "movss",        AVX),
    ("F3.0F.LIG 10 /r",       "vmovss Vdq,Mss",                  "movss",        AVX),
    ("F3.0F.LIG 11 /r",       "vmovss Uss,Hdq,Vdq",              "movss",        AVX),
    ("F3.0F.LIG 11 /r",       "vmovss Mss,Vdq",                  "movss",        AVX),
    ("F2.0F.LIG 10 /r",       "vmovsd Vdq,Hdq,Usd",              "movsd",        AVX),
    ("F2.0F.LIG 10 /r",       "vmovsd Vdq,Msd",                  "movsd",        AVX),
    ("F2.0F.LIG 11 /r",       "vmovsd Usd,Hdq,Vdq",              "movsd",        AVX),
    ("F2.0F.LIG 11 /r",       "vmovsd Msd,Vdq",                  "movsd",        AVX),
    ("0F 12 /r",              "vmovhlps Vdq,Hdq,Udq",            "movhlps",      AVX),
    ("0F 12 /r",              "vmovlps Vdq,Hdq,Mq",              "movlps",       AVX),
    ("0F 13 /r",              "vmovlps Mq,Vdq",                  "movlps",       AVX),
    ("66.0F 12 /r",           "vmovlpd Vdq,Hdq,Mq",              "movlpd",       AVX),
    ("66.0F 13 /r",           "vmovlpd Mq,Vdq",                  "movlpd",       AVX),
    ("0F 16 /r",              "vmovlhps Vdq,Hdq,Udq",            "movlhps",      AVX),
    ("0F 16 /r",              "vmovhps Vdq,Hdq,Mq",              "movhps",       AVX),
    ("0F 17 /r",              "vmovhps Mq,Vdq",                  "movhps",       AVX),
    ("66.0F 16 /r",           "vmovhpd Vdq,Hdq,Mq",              "movhpd",       AVX),
    ("66.0F 17 /r",           "vmovhpd Mq,Vdq",                  "movhpd",       AVX),
    ("F2.0F 12 /r",           "vmovddup Vx,Wx",                  "movddup",      AVX),
    ("F3.0F 12 /r",           "vmovsldup Vx,Wx",                 "movsldup",     AVX),
    ("F3.0F 16 /r",           "vmovshdup Vx,Wx",                 "movshdup",     AVX),
    ("0F.L0 77",              "vzeroupper",                      "vzeroupper",   AVX),
    ("0F.L0 AE /2",           "vldmxcsr Md",                     "ldmxcsr",      AVX),
    ("0F.L0 AE /3",           "vstmxcsr Md",                     "stmxcsr",      AVX),
    # -- integer arithmetic ----------------------------------------------------------------
    ("66.0F FC /r",           "vpaddb Vx,Hx,Wx",                 "paddb",        AVX_AVX2),
    ("66.0F FD /r",           "vpaddw Vx,Hx,Wx",                 "paddw",        AVX_AVX2),
    ("66.0F FE /r",           "vpaddd Vx,Hx,Wx",                 "paddd",        AVX_AVX2),
    ("66.0F D4 /r",           "vpaddq Vx,Hx,Wx",                 "paddq",        AVX_AVX2),
    ("66.0F F8 /r",           "vpsubb Vx,Hx,Wx",                 "psubb",        AVX_AVX2),
    ("66.0F F9 /r",           "vpsubw Vx,Hx,Wx",                 "psubw",        AVX_AVX2),
    ("66.0F FA /r",           "vpsubd Vx,Hx,Wx",                 "psubd",        AVX_AVX2),
    ("66.0F FB /r",           "vpsubq Vx,Hx,Wx",                 "psubq",        AVX_AVX2),
    ("66.0F EC /r",           "vpaddsb Vx,Hx,Wx",                "paddsb",       AVX_AVX2),
    ("66.0F ED /r",           "vpaddsw Vx,Hx,Wx",                "paddsw",       AVX_AVX2),
    ("66.0F DC /r",           "vpaddusb Vx,Hx,Wx",               "paddusb",      AVX_AVX2),
    ("66.0F DD /r",           "vpaddusw Vx,Hx,Wx",               "paddusw",      AVX_AVX2),
    ("66.0F E8 /r",           "vpsubsb Vx,Hx,Wx",                "psubsb",       AVX_AVX2),
    ("66.0F E9 /r",           "vpsubsw Vx,Hx,Wx",                "psubsw",       AVX_AVX2),
    ("66.0F D8 /r",           "vpsubusb Vx,Hx,Wx",               "psubusb",      AVX_AVX2),
    ("66.0F D9 /r",           "vpsubusw Vx,Hx,Wx",               "psubusw",      AVX_AVX2),
    ("66.0F D5 /r",           "vpmullw Vx,Hx,Wx",                "pmullw",       AVX_AVX2),
    ("66.0F38 40 /r",         "vpmulld Vx,Hx,Wx",                "pmulld",       AVX_AVX2),
    ("66.0F E4 /r",           "vpmulhuw Vx,Hx,Wx",               "pmulhuw",      AVX_AVX2),
    ("66.0F E5 /r",           "vpmulhw Vx,Hx,Wx",                "pmulhw",       AVX_AVX2),
    ("66.0F38 0B /r",         "vpmulhrsw Vx,Hx,Wx",              "pmulhrsw",     AVX_AVX2),
    ("66.0F F4 /r",           "vpmuludq Vx,Hx,Wx",               "pmuludq",      AVX_AVX2),
    ("66.0F38 28 /r",         "vpmuldq Vx,Hx,Wx",                "pmuldq",       AVX_AVX2),
    ("66.0F F5 /r",           "vpmaddwd Vx,Hx,Wx",               "pmaddwd",      AVX_AVX2),
    ("66.0F38 04 /r",         "vpmaddubsw Vx,Hx,Wx",             "pmaddubsw",    AVX_AVX2),
    ("66.0F F6 /r",           "vpsadbw Vx,Hx,Wx",                "psadbw",       AVX_AVX2),
    ("66.0F E0 /r",           "vpavgb Vx,Hx,Wx",                 "pavgb",        AVX_AVX2),
    ("66.0F E3 /r",           "vpavgw Vx,Hx,Wx",                 "pavgw",        AVX_AVX2),
    ("66.0F38 1C /r",         "vpabsb Vx,Wx",                    "pabsb",        AVX_AVX2),
    ("66.0F38 1D /r",         "vpabsw Vx,Wx",                    "pabsw",        AVX_AVX2),
    ("66.0F38 1E /r",         "vpabsd Vx,Wx",                    "pabsd",        AVX_AVX2),
    ("66.0F38 08 /r",         "vpsignb Vx,Hx,Wx",                "psignb",       AVX_AVX2),
    ("66.0F38 09 /r",         "vpsignw Vx,Hx,Wx",                "psignw",       AVX_AVX2),
    ("66.0F38 0A /r",         "vpsignd Vx,Hx,Wx",                "psignd",       AVX_AVX2),
    ("66.0F38 01 /r",         "vphaddw Vx,Hx,Wx",                "phaddw",       AVX_AVX2),
    ("66.0F38 02 /r",         "vphaddd Vx,Hx,Wx",                "phaddd",       AVX_AVX2),
    ("66.0F38 03 /r",         "vphaddsw Vx,Hx,Wx",               "phaddsw",      AVX_AVX2),
    ("66.0F38 05 /r",         "vphsubw Vx,Hx,Wx",                "phsubw",       AVX_AVX2),
    ("66.0F38 06 /r",         "vphsubd Vx,Hx,Wx",                "phsubd",       AVX_AVX2),
    ("66.0F38 07 /r",         "vphsubsw Vx,Hx,Wx",               "phsubsw",      AVX_AVX2),
    ("66.0F38 41 /r",         "vphminposuw Vdq,Wdq",             "phminposuw",   AVX),
    # -- integer compares, min/max, logic -------------------------------------------------------
    ("66.0F 74 /r",           "vpcmpeqb Vx,Hx,Wx",               "pcmpeqb",      AVX_AVX2),
    ("66.0F 75 /r",           "vpcmpeqw Vx,Hx,Wx",               "pcmpeqw",      AVX_AVX2),
    ("66.0F 76 /r",           "vpcmpeqd Vx,Hx,Wx",               "pcmpeqd",      AVX_AVX2),
    ("66.0F38 29 /r",         "vpcmpeqq Vx,Hx,Wx",               "pcmpeqq",      AVX_AVX2),
    ("66.0F 64 /r",           "vpcmpgtb Vx,Hx,Wx",               "pcmpgtb",      AVX_AVX2),
    ("66.0F 65 /r",           "vpcmpgtw Vx,Hx,Wx",               "pcmpgtw",      AVX_AVX2),
    ("66.0F 66 /r",           "vpcmpgtd Vx,Hx,Wx",               "pcmpgtd",      AVX_AVX2),
    ("66.0F38 37 /r",         "vpcmpgtq Vx,Hx,Wx",               "pcmpgtq",      AVX_AVX2),
    ("66.0F DA /r",           "vpminub Vx,Hx,Wx",                "pminub",       AVX_AVX2),
    ("66.0F DE /r",           "vpmaxub Vx,Hx,Wx",                "pmaxub",       AVX_AVX2),
    ("66.0F EA /r",           "vpminsw Vx,Hx,Wx",                "pminsw",       AVX_AVX2),
    ("66.0F EE /r",           "vpmaxsw Vx,Hx,Wx",                "pmaxsw",       AVX_AVX2),
    ("66.0F38 38 /r",         "vpminsb Vx,Hx,Wx",                "pminsb",       AVX_AVX2),
    ("66.0F38 39 /r",         "vpminsd Vx,Hx,Wx",                "pminsd",       AVX_AVX2),
    ("66.0F38 3A /r",         "vpminuw Vx,Hx,Wx",                "pminuw",       AVX_AVX2),
    ("66.0F38 3B /r",         "vpminud Vx,Hx,Wx",                "pminud",       AVX_AVX2),
    ("66.0F38 3C /r",         "vpmaxsb Vx,Hx,Wx",                "pmaxsb",       AVX_AVX2),
    ("66.0F38 3D /r",         "vpmaxsd Vx,Hx,Wx",                "pmaxsd",       AVX_AVX2),
    ("66.0F38 3E /r",         "vpmaxuw Vx,Hx,Wx",                "pmaxuw",       AVX_AVX2),
    ("66.0F38 3F /r",         "vpmaxud Vx,Hx,Wx",                "pmaxud",       AVX_AVX2),
    ("66.0F DB /r",           "vpand Vx,Hx,Wx",                  "pand",         AVX_AVX2),
    ("66.0F DF /r",           "vpandn Vx,Hx,Wx",                 "pandn",        AVX_AVX2),
    ("66.0F EB /r",           "vpor Vx,Hx,Wx",                   "por",          AVX_AVX2),
    ("66.0F EF /r",           "vpxor Vx,Hx,Wx",                  "pxor",         AVX_AVX2),
    ("0F 54 /r",              "vandps Vx,Hx,Wx",                 "andps",        AVX),
    ("66.0F 54 /r",           "vandpd Vx,Hx,Wx",                 "andpd",        AVX),
    ("0F 55 /r",              "vandnps Vx,Hx,Wx",                "andnps",       AVX),
    ("66.0F 55 /r",           "vandnpd Vx,Hx,Wx",                "andnpd",       AVX),
    ("0F 56 /r",              "vorps Vx,Hx,Wx",                  "orps",         AVX),
    ("66.0F 56 /r",           "vorpd Vx,Hx,Wx",                  "orpd",         AVX),
    ("0F 57 /r",              "vxorps Vx,Hx,Wx",                 "xorps",        AVX),
    ("66.0F 57 /r",           "vxorpd Vx,Hx,Wx",                 "xorpd",        AVX),
    ("66.0F D7 /r",           "vpmovmskb Gd,Ux",                 "pmovmskb",     AVX_AVX2),
    ("0F 50 /r",              "vmovmskps Gd,Ux",                 "movmskps",     AVX),
    ("66.0F 50 /r",           "vmovmskpd Gd,Ux",                 "movmskpd",     AVX),
    ("66.0F38 17 /r",         "vptest Vx,Wx",                    "ptest",        AVX),
    # -- shuffles, unpacks, packs, blends --------------------------------------------------------
    ("66.0F38 00 /r",         "vpshufb Vx,Hx,Wx",                "pshufb",       AVX_AVX2),
    ("66.0F 70 /r ib",        "vpshufd Vx,Wx,Ib",                "pshufd",       AVX_AVX2),
    ("F3.0F 70 /r ib",        "vpshufhw Vx,Wx,Ib",               "pshufhw",      AVX_AVX2),
    ("F2.0F 70 /r ib",        "vpshuflw Vx,Wx,Ib",               "pshuflw",      AVX_AVX2),
    ("66.0F3A 0F /r ib",      "vpalignr Vx,Hx,Wx,Ib",            "palignr",      AVX_AVX2),
    ("66.0F 60 /r",           "vpunpcklbw Vx,Hx,Wx",             "punpcklbw",    AVX_AVX2),
    ("66.0F 61 /r",           "vpunpcklwd Vx,Hx,Wx",             "punpcklwd",    AVX_AVX2),
    ("66.0F 62 /r",           "vpunpckldq Vx,Hx,Wx",             "punpckldq",    AVX_AVX2),
    ("66.0F 6C /r",           "vpunpcklqdq Vx,Hx,Wx",            "punpcklqdq",   AVX_AVX2),
    ("66.0F 68 /r",           "vpunpckhbw Vx,Hx,Wx",             "punpckhbw",    AVX_AVX2),
    ("66.0F 69 /r",           "vpunpckhwd Vx,Hx,Wx",             "punpckhwd",    AVX_AVX2),
    ("66.0F 6A /r",           "vpunpckhdq Vx,Hx,Wx",             "punpckhdq",    AVX_AVX2),
    ("66.0F 6D /r",           "vpunpckhqdq Vx,Hx,Wx",            "punpckhqdq",   AVX_AVX2),
    ("66.0F 63 /r",           "vpacksswb Vx,Hx,Wx",              "packsswb",     AVX_AVX2),
    ("66.0F 6B /r",           "vpackssdw Vx,Hx,Wx",              "packssdw",     AVX_AVX2),
    ("66.0F 67 /r",           "vpackuswb Vx,Hx,Wx",              "packuswb",     AVX_AVX2),
    ("66.0F38 2B /r",         "vpackusdw Vx,Hx,Wx",              "packusdw",     AVX_AVX2),
    ("0F 14 /r",              "vunpcklps Vx,Hx,Wx",              "unpcklps",     AVX),
    ("66.0F 14 /r",           "vunpcklpd Vx,Hx,Wx",              "unpcklpd",     AVX),
    ("0F 15 /r",              "vunpckhps Vx,Hx,Wx",              "unpckhps",     AVX),
    ("66.0F 15 /r",           "vunpckhpd Vx,Hx,Wx",              "unpckhpd",     AVX),
    ("0F C6 /r ib",           "vshufps Vx,Hx,Wx,Ib",             "shufps",       AVX),
    ("66.0F C6 /r ib",        "vshufpd Vx,Hx,Wx,Ib",             "shufpd",       AVX),
    ("66.0F3A 0E /r ib",      "vpblendw Vx,Hx,Wx,Ib",            "pblendw",      AVX_AVX2),
    ("66.0F3A 40 /r ib",      "vdpps Vx,Hx,Wx,Ib",               "dpps",         AVX),
    ("66.0F3A 41 /r ib",      "vdppd Vdq,Hdq,Wdq,Ib",            "dppd",         AVX),
    ("66.0F3A 42 /r ib",      "vmpsadbw Vx,Hx,Wx,Ib",            "mpsadbw",      AVX_AVX2),
    ("66.0F3A 21 /r ib",      "vinsertps Vdq,Hdq,Wd,Ib",         "insertps",     AVX),
    # -- shifts ----------------------------------------------------------------------------------
    ("66.0F 71 /2 ib",        "vpsrlw Hx,Ux,Ib",                 "psrlw",        AVX_AVX2),
    ("66.0F 71 /4 ib",        "vpsraw Hx,Ux,Ib",                 "psraw",        AVX_AVX2),
    ("66.0F 71 /6 ib",        "vpsllw Hx,Ux,Ib",                 "psllw",        AVX_AVX2),
    ("66.0F 72 /2 ib",        "vpsrld Hx,Ux,Ib",                 "psrld",        AVX_AVX2),
    ("66.0F 72 /4 ib",        "vpsrad Hx,Ux,Ib",                 "psrad",        AVX_AVX2),
    ("66.0F 72 /6 ib",        "vpslld Hx,Ux,Ib",                 "pslld",        AVX_AVX2),
    ("66.0F 73 /2 ib",        "vpsrlq Hx,Ux,Ib",                 "psrlq",        AVX_AVX2),
    ("66.0F 73 /3 ib",        "vpsrldq Hx,Ux,Ib",                "psrldq",       AVX_AVX2),
    ("66.0F 73 /6 ib",        "vpsllq Hx,Ux,Ib",                 "psllq",        AVX_AVX2),
    ("66.0F 73 /7 ib",        "vpslldq Hx,Ux,Ib",                "pslldq",       AVX_AVX2),
    ("66.0F D1 /r",           "vpsrlw Vx,Hx,Wdq",                "psrlw",        AVX_AVX2),
    ("66.0F E1 /r",           "vpsraw Vx,Hx,Wdq",                "psraw",        AVX_AVX2),
    ("66.0F F1 /r",           "vpsllw Vx,Hx,Wdq",                "psllw",        AVX_AVX2),
    ("66.0F D2 /r",           "vpsrld Vx,Hx,Wdq",                "psrld",        AVX_AVX2),
    ("66.0F E2 /r",           "vpsrad Vx,Hx,Wdq",                "psrad",        AVX_AVX2),
    ("66.0F F2 /r",           "vpslld Vx,Hx,Wdq",                "pslld",        AVX_AVX2),
    ("66.0F D3 /r",           "vpsrlq Vx,Hx,Wdq",                "psrlq",        AVX_AVX2),
    ("66.0F F3 /r",           "vpsllq Vx,Hx,Wdq",                "psllq",        AVX_AVX2),
    # -- inserts and extracts (128 bits) --------------------------------------------------------
    ("66.0F3A 14 /r ib",      "vpextrb Eb,Vdq,Ib",               "pextrb",       AVX),
    ("66.0F3A 15 /r ib",      "vpextrw Ew,Vdq,Ib",               "pextrw",       AVX),
    ("66.0F C5 /r ib",        "vpextrw Gd,Udq,Ib",               "pextrw",       AVX),
    ("66.0F3A.W0 16 /r ib",   "vpextrd Ed,Vdq,Ib",               "pextrd",       AVX),
    ("66.0F3A.W1 16 /r ib",   "vpextrq Eq,Vdq,Ib",               "pextrq",       AVX),
    ("66.0F3A 17 /r ib",      "vextractps Ed,Vdq,Ib",            "extractps",    AVX),
    ("66.0F3A 20 /r ib",      "vpinsrb Vdq,Hdq,Eb,Ib",           "pinsrb",       AVX),
    ("66.0F C4 /r ib",        "vpinsrw Vdq,Hdq,Ew,Ib",           "pinsrw",       AVX),
    ("66.0F3A.W0 22 /r ib",   "vpinsrd Vdq,Hdq,Ed,Ib",           "pinsrd",       AVX),
    ("66.0F3A.W1 22 /r ib",   "vpinsrq Vdq,Hdq,Eq,Ib",           "pinsrq",       AVX),
    # -- floating point ------------------------------------------------------------------------
    ("0F 58 /r",              "vaddps Vx,Hx,Wx",                 "addps",        AVX),
    ("66.0F 58 /r",           "vaddpd Vx,Hx,Wx",                 "addpd",        AVX),
    ("F3.0F.LIG 58 /r",       "vaddss Vdq,Hdq,Wss",              "addss",        AVX),
    ("F2.0F.LIG 58 /r",       "vaddsd Vdq,Hdq,Wsd",              "addsd",        AVX),
    ("0F 59 /r",              "vmulps Vx,Hx,Wx",                 "mulps",        AVX),
    ("66.0F 59 /r",           "vmulpd Vx,Hx,Wx",                 "mulpd",        AVX),
    ("F3.0F.LIG 59 /r",       "vmulss Vdq,Hdq,Wss",              "mulss",        AVX),
    ("F2.0F.LIG 59 /r",       "vmulsd Vdq,Hdq,Wsd",              "mulsd",        AVX),
    ("0F 5C /r",              "vsubps Vx,Hx,Wx",                 "subps",        AVX),
    ("66.0F 5C /r",           "vsubpd Vx,Hx,Wx",                 "subpd",        AVX),
    ("F3.0F.LIG 5C /r",       "vsubss Vdq,Hdq,Wss",              "subss",        AVX),
    ("F2.0F.LIG 5C /r",       "vsubsd Vdq,Hdq,Wsd",              "subsd",        AVX),
    ("0F 5D /r",              "vminps Vx,Hx,Wx",                 "minps",        AVX),
    ("66.0F 5D /r",           "vminpd Vx,Hx,Wx",                 "minpd",        AVX),
    ("F3.0F.LIG 5D /r",       "vminss Vdq,Hdq,Wss",              "minss",        AVX),
    ("F2.0F.LIG 5D /r",       "vminsd Vdq,Hdq,Wsd",              "minsd",        AVX),
    ("0F 5E /r",              "vdivps Vx,Hx,Wx",                 "divps",        AVX),
    ("66.0F 5E /r",           "vdivpd Vx,Hx,Wx",                 "divpd",        AVX),
    ("F3.0F.LIG 5E /r",       "vdivss Vdq,Hdq,Wss",              "divss",        AVX),
    ("F2.0F.LIG 5E /r",       "vdivsd Vdq,Hdq,Wsd",              "divsd",        AVX),
    ("0F 5F /r",              "vmaxps Vx,Hx,Wx",                 "maxps",        AVX),
    ("66.0F 5F /r",           "vmaxpd Vx,Hx,Wx",                 "maxpd",        AVX),
    ("F3.0F.LIG 5F /r",       "vmaxss Vdq,Hdq,Wss",              "maxss",        AVX),
    ("F2.0F.LIG 5F /r",       "vmaxsd Vdq,Hdq,Wsd",              "maxsd",        AVX),
    ("0F 51 /r",              "vsqrtps Vx,Wx",                   "sqrtps",       AVX),
    ("66.0F 51 /r",           "vsqrtpd Vx,Wx",                   "sqrtpd",       AVX),
    ("F3.0F.LIG 51 /r",       "vsqrtss Vdq,Hdq,Wss",             "sqrtss",       AVX),
    ("F2.0F.LIG 51 /r",       "vsqrtsd Vdq,Hdq,Wsd",             "sqrtsd",       AVX),
    ("0F 52 /r",              "vrsqrtps Vx,Wx",                  "rsqrtps",      AVX),
    ("F3.0F.LIG 52 /r",       "vrsqrtss Vdq,Hdq,Wss",            "rsqrtss",      AVX),
    ("0F 53 /r",              "vrcpps Vx,Wx",                    "rcpps",        AVX),
    ("F3.0F.LIG 53 /r",       "vrcpss Vdq,Hdq,Wss",              "rcpss",        AVX),
    ("0F C2 /r ib",           "vcmpps Vx,Hx,Wx,Ib",              "cmpps",        AVX),
    ("66.0F C2 /r ib",        "vcmppd Vx,Hx,Wx,Ib",              "cmppd",        AVX),
    ("F3.0F.LIG C2 /r ib",    "vcmpss Vdq,Hdq,Wss,Ib",           "cmpss",        AVX),
    ("F2.0F.LIG C2 /r ib",    "vcmpsd Vdq,Hdq,Wsd,Ib",           "cmpsd",        AVX),
    ("0F.LIG 2E /r",          "vucomiss Vdq,Wss",                "ucomiss",      AVX),
    ("66.0F.LIG 2E /r",       "vucomisd Vdq,Wsd",                "ucomisd",      AVX),
    ("0F.LIG 2F /r",          "vcomiss Vdq,Wss",                 "comiss",       AVX),
    ("66.0F.LIG 2F /r",       "vcomisd Vdq,Wsd",                 "comisd",       AVX),
    ("F2.0F 7C /r",           "vhaddps Vx,Hx,Wx",                "haddps",       AVX),
    ("66.0F 7C /r",           "vhaddpd Vx,Hx,Wx",                "haddpd",       AVX),
    ("F2.0F 7D /r",           "vhsubps Vx,Hx,Wx",                "hsubps",       AVX),
    ("66.0F 7D /r",           "vhsubpd Vx,Hx,Wx",                "hsubpd",       AVX),
    ("F2.0F D0 /r",           "vaddsubps Vx,Hx,Wx",              "addsubps",     AVX),
    ("66.0F D0 /r",           "vaddsubpd Vx,Hx,Wx",              "addsubpd",     AVX),
    ("66.0F3A 08 /r ib",      "vroundps Vx,Wx,Ib",               "roundps",      AVX),
    ("66.0F3A 09 /r ib",      "vroundpd Vx,Wx,Ib",               "roundpd",      AVX),
    ("66.0F3A.LIG 0A /r ib",  "vroundss Vdq,Hdq,Wss,Ib",         "roundss",      AVX),
    ("66.0F3A.LIG 0B /r ib",  "vroundsd Vdq,Hdq,Wsd,Ib",         "roundsd",      AVX),
    # -- conversions -------------------------------------------------------------------------
    ("0F 5B /r",              "vcvtdq2ps Vx,Wx",                 "cvtdq2ps",     AVX),
    ("66.0F 5B /r",           "vcvtps2dq Vx,Wx",                 "cvtps2dq",     AVX),
    ("F3.0F 5B /r",           "vcvttps2dq Vx,Wx",                "cvttps2dq",    AVX),
    ("F3.0F E6 /r",           "vcvtdq2pd Vdq,Wq",                "cvtdq2pd",     AVX),
    ("66.0F E6 /r",           "vcvttpd2dq Vdq,Wdq",              "cvttpd2dq",    AVX),
    ("F2.0F E6 /r",           "vcvtpd2dq Vdq,Wdq",               "cvtpd2dq",     AVX),
    ("0F 5A /r",              "vcvtps2pd Vdq,Wq",                "cvtps2pd",     AVX),
    ("66.0F 5A /r",           "vcvtpd2ps Vdq,Wdq",               "cvtpd2ps",     AVX),
    ("F3.0F.LIG 5A /r",       "vcvtss2sd Vdq,Hdq,Wss",           "cvtss2sd",     AVX),
    ("F2.0F.LIG 5A /r",       "vcvtsd2ss Vdq,Hdq,Wsd",           "cvtsd2ss",     AVX),
    ("F3.0F.LIG 2A /r",       "vcvtsi2ss Vdq,Hdq,Ey",            "cvtsi2ss",     AVX),
    ("F2.0F.LIG 2A /r",       "vcvtsi2sd Vdq,Hdq,Ey",            "cvtsi2sd",     AVX),
    ("F3.0F.LIG 2C /r",       "vcvttss2si Gy,Wss",               "cvttss2si",    AVX),
    ("F2.0F.LIG 2C /r",       "vcvttsd2si Gy,Wsd",               "cvttsd2si",    AVX),
    ("F3.0F.LIG 2D /r",       "vcvtss2si Gy,Wss",                "cvtss2si",     AVX),
    ("F2.0F.LIG 2D /r",       "vcvtsd2si Gy,Wsd",                "cvtsd2si",     AVX),
    # -- string compares, crypto (128 bits) -----------------------------------------------------
    ("66.0F3A 60 /r ib",      "vpcmpestrm Vdq,Wdq,Ib",           "pcmpestrm",    AVX),
    ("66.0F3A 61 /r ib",      "vpcmpestri Vdq,Wdq,Ib",           "pcmpestri",    AVX),
    ("66.0F3A 62 /r ib",      "vpcmpistrm Vdq,Wdq,Ib",           "pcmpistrm",    AVX),
    ("66.0F3A 63 /r ib",      "vpcmpistri Vdq,Wdq,Ib",           "pcmpistri",    AVX),
    ("66.0F38 DC /r",         "vaesenc Vdq,Hdq,Wdq",             "aesenc",       AVX_AES),
    ("66.0F38 DD /r",         "vaesenclast Vdq,Hdq,Wdq",         "aesenclast",   AVX_AES),
    ("66.0F38 DE /r",         "vaesdec Vdq,Hdq,Wdq",             "aesdec",       AVX_AES),
    ("66.0F38 DF /r",         "vaesdeclast Vdq,Hdq,Wdq",         "aesdeclast",   AVX_AES),
    ("66.0F38 DB /r",         "vaesimc Vdq,Wdq",                 "aesimc",       AVX_AES),
    ("66.0F3A DF /r ib",      "vaeskeygenassist Vdq,Wdq,Ib",     "aeskeygenassist", AVX_AES),
    ("66.0F3A 44 /r ib",      "vpclmulqdq Vdq,Hdq,Wdq,Ib",       "pclmulqdq",    AVX_PCLMUL),
    # -- BMI1, BMI2: VEX-encoded GPR instructions (B = the GPR VEX.vvvv names) ---------------------
    ("0F38.L0 F2 /r",         "andn Gy,By,Ey",                   "andn",         "BMI1"),
    ("0F38.L0 F7 /r",         "bextr Gy,Ey,By",                  "bextr",        "BMI1"),
    ("0F38.L0 F3 /3",         "blsi By,Ey",                      "blsi",         "BMI1"),
    ("0F38.L0 F3 /2",         "blsmsk By,Ey",                    "blsmsk",       "BMI1"),
    ("0F38.L0 F3 /1",         "blsr By,Ey",                      "blsr",         "BMI1"),
    ("0F38.L0 F5 /r",         "bzhi Gy,Ey,By",                   "bzhi",         "BMI2"),
    ("F2.0F38.L0 F6 /r",      "mulx Gy,By,Ey",                   "mulx",         "BMI2"),
    ("F2.0F38.L0 F5 /r",      "pdep Gy,By,Ey",                   "pdep",         "BMI2"),
    ("F3.0F38.L0 F5 /r",      "pext Gy,By,Ey",                   "pext",         "BMI2"),
    ("F2.0F3A.L0 F0 /r ib",   "rorx Gy,Ey,Ib",                   "rorx",         "BMI2"),
    ("F3.0F38.L0 F7 /r",      "sarx Gy,Ey,By",                   "sarx",         "BMI2"),
    ("66.0F38.L0 F7 /r",      "shlx Gy,Ey,By",                   "shlx",         "BMI2"),
    ("F2.0F38.L0 F7 /r",      "shrx Gy,Ey,By",                   "shrx",         "BMI2"),
)


@dataclass(frozen=True)
class Form:
    """One row of the table, parsed."""
    map: int
    pp: int
    opcode: int
    digit: int | None       # the /digit of an opcode extension
    w: int | None           # VEX.W required (None: ignored)
    l: int | None           # VEX.L required (None: either, or ignored)
    width_by_l: bool        # an "x" form: 128 or 256 bits by VEX.L
    mod: str                # "reg", "mem" or "" (either)
    mnemonic: str
    operands: tuple[str, ...]
    semantic: str | None
    feature: str

    @property
    def uses_vvvv(self) -> bool:
        """Whether VEX.vvvv names an operand (H: a vector, B: a GPR)."""
        return any(o[0] in "HB" for o in self.operands)

    @property
    def vector_source_in_vvvv(self) -> bool:
        """An H operand: the first source of a legacy SSE semantic is there,
        not in the destination (translator/vex.py VexInsn)."""
        return any(o.startswith("H") for o in self.operands)

    def width(self, vex: Vex) -> int:
        return 256 if self.width_by_l and vex.l else 128

    def features(self, vex: Vex) -> tuple[str, ...]:
        """The model features this form needs at this VEX.L."""
        if self.feature == AVX_AVX2:
            return ("avx2",) if vex.l else ("avx",)
        return tuple(f.lower() for f in self.feature.split("+"))

    def matches(self, vex: Vex) -> bool:
        return ((self.digit is None or vex.reg == self.digit)
                and (self.w is None or vex.w == self.w)
                and (self.l is None or vex.l == self.l)
                and (self.mod != "reg" or vex.register_form)
                and (self.mod != "mem" or not vex.register_form))


_PP = {"66": 1, "F3": 2, "F2": 3}
_MAP = {"0F": 1, "0F38": 2, "0F3A": 3}


def _parse(encoding: str, syntax: str, semantic: str | None, feature: str) -> Form:
    head, *rest = encoding.split()
    pp, mp, w, lig, fixed_l = 0, 0, None, False, None
    for part in head.split("."):
        if part in _PP:
            pp = _PP[part]
        elif part in _MAP:
            mp = _MAP[part]
        elif part in ("W0", "W1"):
            w = int(part[1])
        elif part == "LIG":
            lig = True
        elif part in ("L0", "L1"):
            fixed_l = int(part[1])
        else:
            raise ValueError(f"avxtable: {encoding!r}: unknown field {part!r}")
    opcode = int(rest[0], 16)
    digit = int(rest[1][1:]) if len(rest) > 1 and rest[1][1:].isdigit() else None
    mnemonic, _, ops = syntax.partition(" ")
    operands = tuple(o for o in ops.split(",") if o)
    vectors = [o for o in operands if o[0] in "VHWUML"]
    sizes = {o[1:] for o in vectors}
    if lig:
        l, by_l = None, False
    elif "qq" in sizes:
        l, by_l = 1, True
    elif "x" in sizes:
        l, by_l = None, True
    elif "dq" in sizes or not operands:
        l, by_l = 0, False
    else:
        l, by_l = None, False
    if fixed_l is not None:
        l = fixed_l
    kinds = {o[0] for o in operands}
    mod = "reg" if kinds & {"U", "R"} else "mem" if "M" in kinds else ""
    return Form(mp, pp, opcode, digit, w, l, by_l, mod, mnemonic, operands, semantic, feature)


@functools.cache
def _index() -> dict[tuple[int, int, int], tuple[Form, ...]]:
    from bttool.translator.semantics import avx   # noqa: F401  (registers the AVX-only semantics)
    index: dict[tuple[int, int, int], list[Form]] = {}
    for row in ROWS + avx.ROWS:
        f = _parse(*row)
        index.setdefault((f.map, f.pp, f.opcode), []).append(f)
    return {k: tuple(v) for k, v in index.items()}


def forms() -> list[Form]:
    """Every row, parsed (for tests and ``bttool coverage``)."""
    return [f for fs in _index().values() for f in fs]


@functools.cache
def table_ids() -> frozenset[int]:
    """The capstone ids of the table's mnemonics."""
    from capstone import x86_const as X
    return frozenset(i for i in (getattr(X, "X86_INS_" + f.mnemonic.upper(), None) for f in forms())
                     if i is not None)


def find(vex: Vex) -> Form | None:
    """The table's form for these encoding fields, or None (#UD)."""
    if vex.bad_prefix:
        return None
    for f in _index().get((vex.map, vex.pp, vex.opcode), ()):
        if f.matches(vex):
            if not f.uses_vvvv and vex.vvvv != 0:
                return None         # VEX.vvvv must be 1111b when unused
            return f
    return None


def missing_feature(form: Form, vex: Vex, model: CpuModel) -> str | None:
    """The feature of ``form`` that ``model`` lacks, or None."""
    for feature in form.features(vex):
        if not model.has(feature):
            return feature
    return None


def _registry_semantic(mnemonic: str) -> SemanticFn | None:
    """The registry's semantic of the instruction called ``mnemonic``."""
    from capstone import x86_const as X
    return registry.lookup(getattr(X, "X86_INS_" + mnemonic.upper(), -1))


def semantic_of(form: Form) -> SemanticFn:
    """The function that lifts ``form``: a semantics/avx.py function of that
    name, or the legacy SSE semantic of that mnemonic."""
    from bttool.translator.semantics import avx
    fn = avx.SEMANTICS.get(form.semantic or "") or _registry_semantic(form.semantic or "")
    if fn is None:
        raise KeyError(f"avxtable: no semantic {form.semantic!r} for {form.mnemonic}")
    return fn


# Legacy-encoded (non-VEX) instructions that need a CPUID feature, and what
# a CPU without it does: #UD, or, for tzcnt and lzcnt (F3 0F BC/BD), the
# instruction the F3 prefix is ignored on (SDM vol. 2: "LZCNT ... on
# processors that do not support LZCNT, the instruction byte encoding is
# executed as BSR").  Capstone decodes these bytes as the new instruction.
LEGACY: dict[str, tuple[str, str | None]] = {
    # capstone mnemonic: (feature, the twin without it, or None for #UD)
    "tzcnt": ("bmi1", "bsf"),
    "lzcnt": ("lzcnt", "bsr"),
    "movbe": ("movbe", None),
    "adcx": ("adx", None),
    "adox": ("adx", None),
}


@dataclass(frozen=True)
class Decision:
    """What the table says of one instruction for a CPU model: lift it with
    ``form`` (a VEX form) or as its legacy ``twin`` (a mnemonic whose
    semantic runs on the same operands), or #UD for ``ud`` (the feature the
    model lacks, or "encoding" for one no form allows)."""
    vex: Vex | None = None
    form: Form | None = None
    ud: str | None = None
    twin: str | None = None


def _legacy(insn, model: CpuModel) -> Decision | None:
    rule = LEGACY.get(insn.mnemonic)
    if rule is None or model.has(rule[0]):
        return None
    return Decision(twin=rule[1]) if rule[1] else Decision(ud=rule[0])


def decide(insn, mode: int, model: CpuModel) -> Decision | None:
    """The table's decision on ``insn``, or None when the registry's
    semantics apply as they are (or it is a gap of bttool's).  The one rule
    the lifter (``bind``) and ``bttool coverage`` follow."""
    from bttool.translator import vex as vexmod
    v = vexmod.parse(bytes(insn.bytes), mode)
    if v is None:
        return _legacy(insn, model)
    form = find(v)
    if form is None:
        # an encoding the table's forms of this instruction exclude (VEX.L,
        # VEX.W, a prefix, a used VEX.vvvv) is #UD; an instruction the table
        # lacks is a gap of bttool's (the registry has no semantics either)
        return Decision(v, ud="encoding") if insn.id in table_ids() else None
    lacking = missing_feature(form, v, model)
    return Decision(v, form, lacking)


def bind(em, insn, options, model: CpuModel):
    """How the lifter lifts ``insn`` if the table decides it (``decide``): a
    thunk that lifts it, the string "ud" when the CPU raises #UD for it (an
    encoding that does not exist, or a feature ``model`` lacks), or None
    when the registry's semantics apply as they are."""
    from bttool.translator import vex as vexmod
    d = decide(insn, options.mode, model)
    if d is None:
        return None
    if d.ud is not None:
        return "ud"
    if d.twin is not None:
        from bttool.translator.operands import Insn
        ctx = Insn(em, insn, options.mode, options.user_mode, model)
        ctx.mnemonic = d.twin
        return functools.partial(_registry_semantic(d.twin), ctx)
    fn = semantic_of(d.form)
    ctx = vexmod.VexInsn(em, insn, options.mode, options.user_mode, model, d.vex, d.form)
    per_lane = ctx.vex_bits == 256 and not getattr(fn, "width_generic", False)
    return functools.partial(vexmod.run, fn, ctx, per_lane)

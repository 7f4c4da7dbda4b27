"""The bits of the control registers and EFER that the virtual CPU and its
MMU act on (Intel SDM vol. 3, 2.5 and 2.2.1), defined once for both."""
from __future__ import annotations

EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11
CR0_PE, CR0_MP, CR0_EM, CR0_TS, CR0_ET, CR0_NE, CR0_WP, CR0_PG = (1, 2, 4, 8, 16, 32,
                                                                  1 << 16, 1 << 31)
CR4_PAE, CR4_UMIP = 1 << 5, 1 << 11

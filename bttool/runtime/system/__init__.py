"""System mode: a bare-metal x86 guest on a virtual machine (boot protocols,
virtual CPU, MMU and software TLB, privileged instructions, devices)."""

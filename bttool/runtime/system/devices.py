"""Virtual devices of the system-mode machine, reached through I/O ports.

Only what a small kernel needs, each modelled on the real part: a 16550 UART
(COM1) wired to bttool's stdin/stdout, the 8259 PIC pair, the 8254 PIT
(channel 0 drives IRQ 0 from a host timer thread), the MC146818 CMOS/RTC,
the i8042 reset line and the 0xCF9 reset register, QEMU's isa-debug-exit
port and the ACPI power-off port QEMU's ``pc`` machine honours.  None of
them touches host hardware: the guest's "reset" and "power off" end up as
Python exceptions the machine loop handles.
"""
from __future__ import annotations

import os
import select
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

DEBUG_EXIT_PORT = 0xF4       # QEMU isa-debug-exit (iobase=0xf4, iosize=4)
POWER_OFF_PORTS = {0x604: 0x2000, 0xB004: 0x2000}   # ACPI PM1a_CNT: SLP_EN with S5
RESET_CONTROL_PORT = 0xCF9   # PIIX3 reset control register


class MachineReset(Exception):
    """The guest asked for a reset (i8042 pulse, 0xCF9, triple fault)."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@dataclass
class MachineOff(Exception):
    """The guest powered the machine off; ``status`` is bttool's exit status."""
    status: int
    why: str


# -- 16550 UART ----------------------------------------------------------------
class Uart16550:
    """COM1.  Transmit goes straight to ``out``; receive polls ``in_fd``.
    The line status register always reports an empty transmitter, so a
    polling driver never waits."""

    def __init__(self, out=None, in_fd: int | None = None) -> None:
        self.out = out or sys.stdout.buffer
        self.in_fd = in_fd if in_fd is not None else (sys.stdin.fileno() if sys.stdin else None)
        self.ier = 0
        self.lcr = 0
        self.mcr = 0
        self.scr = 0
        self.dll, self.dlm = 12, 0
        self.fcr = 0
        self.rx: bytearray = bytearray()
        self.eof = False

    def _poll_input(self) -> None:
        if self.eof or self.in_fd is None or self.rx:
            return
        try:
            ready, _, _ = select.select([self.in_fd], [], [], 0)
            if ready:
                data = os.read(self.in_fd, 256)
                if data:
                    self.rx += data
                else:
                    self.eof = True
        except (OSError, ValueError):
            self.eof = True

    def read(self, off: int) -> int:
        dlab = self.lcr & 0x80
        if off == 0:
            if dlab:
                return self.dll
            self._poll_input()
            if self.rx:
                v = self.rx[0]
                del self.rx[0]
                return v
            return 0
        if off == 1:
            return self.dlm if dlab else self.ier
        if off == 2:                       # IIR: no interrupt pending, FIFOs per FCR
            return 0xC1 if self.fcr & 1 else 0x01
        if off == 3:
            return self.lcr
        if off == 4:
            return self.mcr
        if off == 5:                       # LSR: THR empty, transmitter empty, data ready
            self._poll_input()
            return 0x60 | (1 if self.rx else 0)
        if off == 6:                       # MSR: CTS, DSR, DCD
            return 0xB0
        return self.scr

    def write(self, off: int, value: int) -> None:
        dlab = self.lcr & 0x80
        if off == 0:
            if dlab:
                self.dll = value
            elif self.mcr & 0x10:          # loopback
                self.rx.append(value)
            else:
                self.out.write(bytes([value]))
                self.out.flush()
        elif off == 1:
            if dlab:
                self.dlm = value
            else:
                self.ier = value & 0x0F
        elif off == 2:
            self.fcr = value
        elif off == 3:
            self.lcr = value
        elif off == 4:
            self.mcr = value
        elif off == 7:
            self.scr = value


# -- 8259 PIC --------------------------------------------------------------------
@dataclass
class Pic8259:
    """One 8259A.  Edge-triggered IRR/ISR/IMR, the ICW1-ICW4 initialisation
    sequence, OCW2 EOI (specific and non-specific) and OCW3 register reads."""
    vector_base: int = 0x08
    imr: int = 0xFF
    irr: int = 0
    isr: int = 0
    init_step: int = 0        # 0: ready; 2..4: expecting ICW2..ICW4
    icw4_needed: bool = False
    read_isr: bool = False
    auto_eoi: bool = False

    def write(self, port_a0: int, value: int) -> None:
        if port_a0 == 0:
            if value & 0x10:                       # ICW1
                self.init_step, self.icw4_needed = 2, bool(value & 1)
                self.imr = self.irr = self.isr = 0
                return
            if value & 0x08:                       # OCW3
                if value & 0x02:
                    self.read_isr = bool(value & 1)
                return
            cmd = value >> 5                       # OCW2
            if cmd == 1 and self.isr:              # non-specific EOI
                self.isr &= self.isr - 1
            elif cmd == 3:                         # specific EOI
                self.isr &= ~(1 << (value & 7))
            return
        if self.init_step == 2:
            self.vector_base = value & 0xF8
            self.init_step = 3
        elif self.init_step == 3:
            self.init_step = 4 if self.icw4_needed else 0
        elif self.init_step == 4:
            self.auto_eoi = bool(value & 2)
            self.init_step = 0
        else:
            self.imr = value

    def read(self, port_a0: int) -> int:
        if port_a0 == 1:
            return self.imr
        return self.isr if self.read_isr else self.irr

    def pending(self) -> int | None:
        """Highest-priority requested, unmasked line not blocked by an
        in-service line of equal or higher priority."""
        req = self.irr & ~self.imr
        for line in range(8):
            if self.isr & (1 << line):
                return None
            if req & (1 << line):
                return line
        return None


class InterruptController:
    """Master and slave 8259 (slave on master line 2), and the link to the
    CPU: ``update`` recomputes state.irq_pending, which translated code polls."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.master = Pic8259(0x08)
        self.slave = Pic8259(0x70)
        self.lock = threading.RLock()
        self.on_change = on_change

    def raise_irq(self, irq: int) -> None:
        with self.lock:
            if irq < 8:
                self.master.irr |= 1 << irq
            else:
                self.slave.irr |= 1 << (irq - 8)
                self.master.irr |= 1 << 2
        self.on_change()

    def has_pending(self) -> bool:
        with self.lock:
            line = self.master.pending()
            if line == 2:
                return self.slave.pending() is not None
            return line is not None

    def acknowledge(self) -> int | None:
        """INTA: the vector of the interrupt to deliver (None if spurious)."""
        with self.lock:
            line = self.master.pending()
            if line is None:
                return None
            if line == 2:
                sl = self.slave.pending()
                if sl is None:
                    self.master.irr &= ~4
                    return None
                self.slave.irr &= ~(1 << sl)
                if not self.slave.auto_eoi:
                    self.slave.isr |= 1 << sl
                if not self.slave.irr & ~self.slave.imr:
                    self.master.irr &= ~4
                if not self.master.auto_eoi:
                    self.master.isr |= 4
                return self.slave.vector_base + sl
            self.master.irr &= ~(1 << line)
            if not self.master.auto_eoi:
                self.master.isr |= 1 << line
            return self.master.vector_base + line

    def port_write(self, port: int, value: int) -> None:
        with self.lock:
            (self.master if port < 0xA0 else self.slave).write(port & 1, value)
        self.on_change()

    def port_read(self, port: int) -> int:
        with self.lock:
            return (self.master if port < 0xA0 else self.slave).read(port & 1)


# -- 8254 PIT --------------------------------------------------------------------
PIT_HZ = 1193182


class Pit8254:
    """Channel 0 raises IRQ 0 periodically (modes 2 and 3) or once (mode 0)
    from a host thread, at the rate the guest programmed; channel 2 and the
    other ports only keep their values.  The counter read back is derived
    from host time."""

    def __init__(self, raise_irq: Callable[[int], None]) -> None:
        self.raise_irq = raise_irq
        self.reload = [0x10000, 0x10000, 0x10000]
        self.mode = [0, 0, 0]
        self.access = [3, 3, 3]
        self.write_lo: list[int | None] = [None, None, None]
        self.latch: list[list[int]] = [[], [], []]
        self.started = [0.0, 0.0, 0.0]
        self.port61 = 0
        self._gen = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()
        self._gen += 1

    def _program(self, ch: int, value: int) -> None:
        self.reload[ch] = value or 0x10000
        self.started[ch] = time.monotonic()
        if ch == 0:
            self._gen += 1
            gen = self._gen
            period = self.reload[0] / PIT_HZ
            periodic = self.mode[0] in (2, 3)
            t = threading.Thread(target=self._tick, args=(gen, period, periodic), daemon=True,
                                 name="pit")
            self._thread = t
            t.start()

    def _tick(self, gen: int, period: float, periodic: bool) -> None:
        nxt = time.monotonic() + period
        while not self._stop.is_set() and gen == self._gen:
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if gen != self._gen or self._stop.is_set():
                return
            self.raise_irq(0)
            if not periodic:
                return
            nxt += period
            if nxt < time.monotonic() - 10 * period:   # fell far behind: do not burst
                nxt = time.monotonic() + period

    def _count(self, ch: int) -> int:
        elapsed = int((time.monotonic() - self.started[ch]) * PIT_HZ)
        return (self.reload[ch] - elapsed % self.reload[ch]) & 0xFFFF

    def write(self, port: int, value: int) -> None:
        if port == 0x43:
            ch = value >> 6
            if ch == 3:                            # read-back: latch counts
                for c in range(3):
                    if value & (2 << c):
                        v = self._count(c)
                        self.latch[c] = [v & 0xFF, v >> 8]
                return
            acc = (value >> 4) & 3
            if acc == 0:                           # counter latch
                v = self._count(ch)
                self.latch[ch] = [v & 0xFF, v >> 8]
                return
            self.access[ch] = acc
            self.mode[ch] = (value >> 1) & 7
            self.write_lo[ch] = None
            return
        ch = port - 0x40
        acc = self.access[ch]
        if acc == 1:
            self._program(ch, value)
        elif acc == 2:
            self._program(ch, value << 8)
        elif self.write_lo[ch] is None:
            self.write_lo[ch] = value
        else:
            lo, self.write_lo[ch] = self.write_lo[ch], None
            self._program(ch, lo | (value << 8))

    def read(self, port: int) -> int:
        ch = port - 0x40
        if self.latch[ch]:
            return self.latch[ch].pop(0)
        v = self._count(ch)
        return v & 0xFF if self.access[ch] != 2 else v >> 8

    def read_port61(self) -> int:
        # bit 5: channel 2 output, toggling with host time
        out2 = int(time.monotonic() * PIT_HZ / max(self.reload[2], 1)) & 1
        return (self.port61 & 0x0F) | (out2 << 5)


# -- CMOS / RTC --------------------------------------------------------------------
class Cmos:
    """MC146818: the time registers answer host UTC time (BCD unless the
    guest selects binary), status registers A-D, and NVRAM that survives a
    guest reset (it lives as long as the machine, not the boot)."""

    def __init__(self, memory_bytes: int) -> None:
        self.index = 0
        self.nmi_disabled = False
        self.ram = bytearray(128)
        self.ram[0x0A] = 0x26
        self.ram[0x0B] = 0x02          # 24-hour, BCD
        self.ram[0x0D] = 0x80          # RTC valid
        ext = max(0, (min(memory_bytes, 64 << 20) - (1 << 20)) >> 10)
        self.ram[0x15], self.ram[0x16] = 0x80, 0x02          # 640 KiB base memory
        self.ram[0x17] = self.ram[0x30] = ext & 0xFF
        self.ram[0x18] = self.ram[0x31] = (ext >> 8) & 0xFF

    def _time_value(self, reg: int) -> int:
        t = time.gmtime()
        v = {0x00: t.tm_sec, 0x02: t.tm_min, 0x04: t.tm_hour, 0x06: t.tm_wday + 1,
             0x07: t.tm_mday, 0x08: t.tm_mon, 0x09: t.tm_year % 100, 0x32: t.tm_year // 100}[reg]
        if not self.ram[0x0B] & 0x04:
            v = ((v // 10) << 4) | (v % 10)
        return v

    def write(self, port: int, value: int) -> None:
        if port == 0x70:
            self.index = value & 0x7F
            self.nmi_disabled = bool(value & 0x80)
        elif self.index not in (0x0C, 0x0D):
            self.ram[self.index] = value

    def read(self, port: int) -> int:
        if port == 0x70:
            return 0xFF
        if self.index in (0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32):
            return self._time_value(self.index)
        if self.index == 0x0C:
            return 0
        return self.ram[self.index]


# -- the port bus --------------------------------------------------------------------
@dataclass
class PortBus:
    """Routes port reads and writes to the devices."""
    uart: Uart16550
    pic: InterruptController
    pit: Pit8254
    cmos: Cmos
    log: Callable[[str], None] = field(default=lambda m: None)
    unknown: set[int] = field(default_factory=set)

    def read(self, port: int, size: int) -> int:
        if 0x3F8 <= port <= 0x3FF:
            return self.uart.read(port - 0x3F8)
        if port in (0x20, 0x21, 0xA0, 0xA1):
            return self.pic.port_read(port)
        if 0x40 <= port <= 0x43:
            return self.pit.read(port) if port != 0x43 else 0xFF
        if port == 0x61:
            return self.pit.read_port61()
        if port in (0x70, 0x71):
            return self.cmos.read(port)
        if port == 0x64:
            return 0x1C                      # i8042 status: input/output buffers empty
        if port == 0x60:
            return 0
        if port == 0x92:
            return 0x02                      # A20 enabled
        self._unknown(port, "read")
        return (1 << (8 * size)) - 1

    def write(self, port: int, size: int, value: int) -> None:
        if 0x3F8 <= port <= 0x3FF:
            self.uart.write(port - 0x3F8, value & 0xFF)
        elif port in (0x20, 0x21, 0xA0, 0xA1):
            self.pic.port_write(port, value & 0xFF)
        elif 0x40 <= port <= 0x43:
            self.pit.write(port, value & 0xFF)
        elif port == 0x61:
            self.pit.port61 = value & 0x0F
        elif port in (0x70, 0x71):
            self.cmos.write(port, value & 0xFF)
        elif port == 0x64:
            if value & 0xFF == 0xFE:
                raise MachineReset("reset through the keyboard controller (port 0x64 <- 0xFE)")
        elif port == RESET_CONTROL_PORT and size == 1:
            if value & 0x04:
                raise MachineReset(f"reset through port 0xCF9 <- {value & 0xFF:#04x}")
        elif port == DEBUG_EXIT_PORT:
            raise MachineOff(((value & 0xFFFFFFFF) << 1 | 1) & 0xFF,
                             f"isa-debug-exit port {port:#x} <- {value:#x}")
        elif port in POWER_OFF_PORTS and size == 2 and value & 0xFFFF == POWER_OFF_PORTS[port]:
            raise MachineOff(0, f"power off (port {port:#x} <- {value:#x})")
        elif port in (0x80, 0x60, 0x92):    # POST codes, keyboard data, A20: nothing to do
            pass
        else:
            self._unknown(port, "write")

    def _unknown(self, port: int, what: str) -> None:
        if port not in self.unknown:
            self.unknown.add(port)
            self.log(f"{what} of unassigned I/O port {port:#x} (ignored)")

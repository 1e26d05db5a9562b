/**
 * An 8250/16550A UART (the PC's COM1 at 0x3f8, IRQ 4) as a register state machine: what
 * Linux's 8250 driver and earlyprintk program. Output bytes go to `sink`; input bytes are
 * queued with `enqueue` (bounded: the caller stops reading its stream when it is full and
 * resumes on `onInputSpace`). Interrupts are edges reported through `raiseIrq`; the machine
 * turns them into an IRQ line pulse or an irqfd write.
 *
 * Register names and bits: National Semiconductor PC16550D datasheet (Linux serial_reg.h).
 */

// Register offsets from the base port.
export const UART_RX = 0; // in, DLAB=0
export const UART_TX = 0; // out, DLAB=0
export const UART_DLL = 0; // DLAB=1
export const UART_IER = 1; // DLAB=0
export const UART_DLM = 1; // DLAB=1
export const UART_IIR = 2; // in
export const UART_FCR = 2; // out
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;

export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_RLSI = 0x06;
export const UART_IIR_FIFO_ENABLED = 0xc0;

export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;
export const UART_FCR_CLEAR_XMIT = 0x04;

export const UART_LCR_DLAB = 0x80;

export const UART_MCR_DTR = 0x01;
export const UART_MCR_RTS = 0x02;
export const UART_MCR_OUT1 = 0x04;
export const UART_MCR_OUT2 = 0x08;
export const UART_MCR_LOOP = 0x10;

export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;

export const UART_MSR_DCTS = 0x01;
export const UART_MSR_DDSR = 0x02;
export const UART_MSR_TERI = 0x04;
export const UART_MSR_DDCD = 0x08;
export const UART_MSR_CTS = 0x10;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_RI = 0x40;
export const UART_MSR_DCD = 0x80;

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const SERIAL_PORT_LEN = 8;
/** Input buffered in the VMM (the 16550A's own FIFO is 16 bytes; a larger one loses nothing). */
export const RX_CAPACITY = 1024;
/** Baud divisor after reset: 115200 / 12 = 9600 baud, as a BIOS leaves it. */
const DEFAULT_DIVISOR = 12;

export interface SerialOptions {
  sink: (bytes: Uint8Array) => void;
  raiseIrq: () => void;
  onInputSpace?: () => void;
}

export interface SerialState {
  ier: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  dll: number;
  dlm: number;
  thrInterruptPending: boolean;
  rx: number[];
}

export class Serial {
  private ier = 0;
  private lcr = 0x03; // 8N1
  private mcr = UART_MCR_OUT2;
  private lsr = UART_LSR_THRE | UART_LSR_TEMT;
  private msr = UART_MSR_DSR | UART_MSR_CTS | UART_MSR_DCD;
  private scr = 0;
  private fcr = 0;
  private dll = DEFAULT_DIVISOR;
  private dlm = 0;
  private thrInterruptPending = false;
  private rx: number[] = [];

  constructor(private readonly opts: SerialOptions) {}

  get rxSpace(): number {
    return RX_CAPACITY - this.rx.length;
  }

  /** Queues input bytes; returns how many were taken (the rest wait for onInputSpace). */
  enqueue(bytes: Uint8Array): number {
    if (this.mcr & UART_MCR_LOOP) return 0; // in loopback the line is disconnected from the outside
    const n = Math.min(bytes.length, this.rxSpace);
    for (let i = 0; i < n; i++) this.rx.push(bytes[i]!);
    if (n > 0) this.receivedData();
    return n;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = this.readReg(offset);
  }

  write(offset: number, data: Uint8Array): void {
    this.writeReg(offset, data[0]!);
  }

  readReg(offset: number): number {
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_RX: {
        if (dlab) return this.dll;
        const wasFull = this.rx.length === RX_CAPACITY;
        const b = this.rx.shift() ?? 0;
        if (this.rx.length === 0) this.lsr &= ~UART_LSR_DR;
        if (wasFull || this.rx.length === 0) this.opts.onInputSpace?.();
        return b;
      }
      case UART_IER:
        return dlab ? this.dlm : this.ier;
      case UART_IIR: {
        const iir = this.interruptId();
        // Reading IIR while it reports "THR empty" acknowledges that interrupt (16550 datasheet).
        if (iir === UART_IIR_THRI) this.thrInterruptPending = false;
        return iir | (this.fcr & UART_FCR_ENABLE_FIFO ? UART_IIR_FIFO_ENABLED : 0);
      }
      case UART_LCR:
        return this.lcr;
      case UART_MCR:
        return this.mcr;
      case UART_LSR: {
        const v = this.lsr;
        this.lsr &= ~UART_LSR_OE; // overrun is cleared by reading LSR
        return v;
      }
      case UART_MSR: {
        let v: number;
        if (this.mcr & UART_MCR_LOOP) {
          v =
            (this.mcr & UART_MCR_RTS ? UART_MSR_CTS : 0) |
            (this.mcr & UART_MCR_DTR ? UART_MSR_DSR : 0) |
            (this.mcr & UART_MCR_OUT1 ? UART_MSR_RI : 0) |
            (this.mcr & UART_MCR_OUT2 ? UART_MSR_DCD : 0);
        } else {
          v = this.msr;
        }
        this.msr &= 0xf0; // deltas clear on read
        return v;
      }
      case UART_SCR:
        return this.scr;
      default:
        return 0xff;
    }
  }

  writeReg(offset: number, v: number): void {
    const dlab = (this.lcr & UART_LCR_DLAB) !== 0;
    switch (offset) {
      case UART_TX:
        if (dlab) {
          this.dll = v;
          return;
        }
        if (this.mcr & UART_MCR_LOOP) {
          if (this.rx.length < RX_CAPACITY) this.rx.push(v);
          else this.lsr |= UART_LSR_OE;
          this.receivedData();
        } else {
          this.opts.sink(Uint8Array.of(v));
        }
        // Transmission is instant: THR is empty again at once.
        this.lsr |= UART_LSR_THRE | UART_LSR_TEMT;
        this.thrInterruptPending = true;
        if (this.ier & UART_IER_THRI) this.opts.raiseIrq();
        return;
      case UART_IER: {
        if (dlab) {
          this.dlm = v;
          return;
        }
        const was = this.ier;
        this.ier = v & 0x0f;
        // Enabling the THR interrupt while THR is empty raises it (Linux probes for this).
        if (!(was & UART_IER_THRI) && this.ier & UART_IER_THRI) this.thrInterruptPending = true;
        if (this.interruptId() !== UART_IIR_NO_INT) this.opts.raiseIrq();
        return;
      }
      case UART_FCR:
        this.fcr = v & 0xc9;
        if (v & UART_FCR_CLEAR_RCVR) {
          this.rx = [];
          this.lsr &= ~UART_LSR_DR;
          this.opts.onInputSpace?.();
        }
        return;
      case UART_LCR:
        this.lcr = v;
        return;
      case UART_MCR:
        this.mcr = v & 0x1f;
        return;
      case UART_SCR:
        this.scr = v;
        return;
      default:
        return; // LSR and MSR are read-only
    }
  }

  /** Highest-priority pending interrupt (IIR bits 3:0). */
  interruptId(): number {
    if (this.ier & UART_IER_RLSI && this.lsr & UART_LSR_OE) return UART_IIR_RLSI;
    if (this.ier & UART_IER_RDI && this.lsr & UART_LSR_DR) return UART_IIR_RDI;
    if (this.ier & UART_IER_THRI && this.thrInterruptPending) return UART_IIR_THRI;
    if (this.ier & UART_IER_MSI && this.msr & 0x0f) return UART_IIR_MSI;
    return UART_IIR_NO_INT;
  }

  private receivedData(): void {
    if (this.rx.length) this.lsr |= UART_LSR_DR;
    if (this.ier & UART_IER_RDI) this.opts.raiseIrq();
  }

  /** Plain record of the register state (for snapshots). */
  save(): SerialState {
    return {
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      lsr: this.lsr,
      msr: this.msr,
      scr: this.scr,
      fcr: this.fcr,
      dll: this.dll,
      dlm: this.dlm,
      thrInterruptPending: this.thrInterruptPending,
      rx: [...this.rx],
    };
  }
  restore(s: SerialState): void {
    Object.assign(this, { ...s, rx: s.rx.slice(0, RX_CAPACITY) });
  }
}

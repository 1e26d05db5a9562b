/**
 * Just enough of the i8042 keyboard controller (ports 0x60 data, 0x64 status/command) for
 * Linux: its probe (self test, interface test, command byte) finds a controller with nothing
 * attached, and `reboot=k` (command 0xfe, pulse the reset line; or output port bit 0 cleared
 * through 0xd1) ends the VM through `onReset`. That is how our guest agent ends a VM.
 */
export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
/** Ports 0x60..0x64; 0x61 (PC speaker) and 0x62/0x63 read as 0. */
export const I8042_PORT_LEN = 5;

export const STATUS_OBF = 0x01; // output buffer full
export const STATUS_IBF = 0x02; // input buffer full (we never are)
export const STATUS_SYS = 0x04; // system flag (self test passed)
export const STATUS_CMD = 0x08; // last write was to the command port
export const STATUS_AUX = 0x20; // output buffer holds mouse data

export const CMD_READ_CTR = 0x20;
export const CMD_WRITE_CTR = 0x60;
export const CMD_AUX_DISABLE = 0xa7;
export const CMD_AUX_ENABLE = 0xa8;
export const CMD_AUX_TEST = 0xa9;
export const CMD_SELF_TEST = 0xaa;
export const CMD_KBD_TEST = 0xab;
export const CMD_KBD_DISABLE = 0xad;
export const CMD_KBD_ENABLE = 0xae;
export const CMD_READ_OUTPUT_PORT = 0xd0;
export const CMD_WRITE_OUTPUT_PORT = 0xd1;
export const CMD_WRITE_AUX = 0xd4;
export const CMD_PULSE_RESET = 0xfe;

export const SELF_TEST_OK = 0x55;
export const KBD_ACK = 0xfa;
/** Output port: bit 0 is the CPU reset line (active low), bit 1 the A20 gate. */
export const OUTPUT_PORT_RESET = 0x01;
export const OUTPUT_PORT_A20 = 0x02;
/** Controller configuration byte after reset: keyboard interrupt, system flag, translation. */
const DEFAULT_CTR = 0x45;

export class I8042 {
  private status = STATUS_SYS;
  private ctr = DEFAULT_CTR;
  private outputPort = OUTPUT_PORT_RESET | OUTPUT_PORT_A20;
  private out: number[] = [];
  /** a command waiting for its data byte on port 0x60 */
  private pending: number | null = null;

  constructor(private readonly onReset: () => void) {}

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = this.readPort(I8042_DATA_PORT + offset);
  }
  write(offset: number, data: Uint8Array): void {
    this.writePort(I8042_DATA_PORT + offset, data[0]!);
  }

  readPort(port: number): number {
    if (port === I8042_COMMAND_PORT) return this.status | (this.out.length ? STATUS_OBF : 0);
    if (port === I8042_DATA_PORT) return this.out.shift() ?? 0;
    return 0;
  }

  writePort(port: number, v: number): void {
    if (port === I8042_COMMAND_PORT) {
      this.status |= STATUS_CMD;
      this.command(v);
    } else if (port === I8042_DATA_PORT) {
      this.status &= ~STATUS_CMD;
      this.data(v);
    }
  }

  private command(cmd: number): void {
    this.pending = null;
    switch (cmd) {
      case CMD_READ_CTR:
        this.out.push(this.ctr);
        break;
      case CMD_WRITE_CTR:
      case CMD_WRITE_OUTPUT_PORT:
      case CMD_WRITE_AUX:
        this.pending = cmd;
        break;
      case CMD_SELF_TEST:
        this.out.push(SELF_TEST_OK);
        break;
      case CMD_KBD_TEST:
      case CMD_AUX_TEST:
        this.out.push(0x00);
        break;
      case CMD_READ_OUTPUT_PORT:
        this.out.push(this.outputPort);
        break;
      case CMD_KBD_DISABLE:
        this.ctr |= 0x10;
        break;
      case CMD_KBD_ENABLE:
        this.ctr &= ~0x10;
        break;
      case CMD_AUX_DISABLE:
        this.ctr |= 0x20;
        break;
      case CMD_AUX_ENABLE:
        this.ctr &= ~0x20;
        break;
      case CMD_PULSE_RESET:
        this.onReset();
        break;
      default:
        // 0xf0..0xff pulse output lines; bit 0 of the low nibble clear pulses reset.
        if ((cmd & 0xf0) === 0xf0 && !(cmd & 0x01)) this.onReset();
    }
  }

  private data(v: number): void {
    const cmd = this.pending;
    this.pending = null;
    switch (cmd) {
      case CMD_WRITE_CTR:
        this.ctr = v;
        this.status = (this.status & ~STATUS_SYS) | (v & STATUS_SYS);
        return;
      case CMD_WRITE_OUTPUT_PORT:
        this.outputPort = v;
        if (!(v & OUTPUT_PORT_RESET)) this.onReset();
        return;
      case CMD_WRITE_AUX:
        return; // no mouse: the byte goes nowhere
      default:
        // A byte for the keyboard: no keyboard is attached, but acknowledge like one would
        // so that drivers probing it time out quickly instead of retrying.
        this.out.push(KBD_ACK);
    }
  }
}

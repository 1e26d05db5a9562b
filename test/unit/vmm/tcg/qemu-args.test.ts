import { describe, it, expect } from 'vitest';
import { qemuMicrovmArgs, type QemuMicrovmOptions } from '../../../../src/vmm/tcg/qemu-args.js';
import { InvalidParameterError } from '../../../../src/errors.js';

const base: QemuMicrovmOptions = {
  kernel: '/k/bzImage',
  initrd: '/k/init.cpio',
  cmdline: 'console=ttyS0 reboot=t panic=-1',
  memoryMiB: 256,
  vcpus: 2,
  vhostUser: [
    { kind: 'blk', fd: 3 },
    { kind: 'vsock', fd: 4 },
    { kind: 'rng', fd: 5 },
  ],
};

/** The value following `flag` each time it occurs. */
const values = (args: string[], flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]!] : []));

describe('qemuMicrovmArgs', () => {
  it('builds the command line measured to work under TCG', () => {
    const a = qemuMicrovmArgs(base);
    expect(values(a, '-M')).toEqual(['microvm,acpi=off,x-option-roms=off,isa-serial=on,rtc=off']);
    expect(values(a, '-accel')).toEqual(['tcg']);
    expect(values(a, '-cpu')).toEqual(['max']);
    expect(values(a, '-smp')).toEqual(['2']);
    expect(values(a, '-m')).toEqual(['256M']);
    for (const f of ['-nodefaults', '-no-user-config', '-no-reboot']) expect(a).toContain(f);
    expect(values(a, '-display')).toEqual(['none']);
    expect(values(a, '-serial')).toEqual(['stdio']);
    expect(values(a, '-object')).toEqual(['memory-backend-memfd,id=mem,size=256M,share=on']);
    expect(values(a, '-machine')).toEqual(['memory-backend=mem']);
    expect(values(a, '-global')).toEqual(['virtio-mmio.force-legacy=false']);
    expect(values(a, '-kernel')).toEqual(['/k/bzImage']);
    expect(values(a, '-initrd')).toEqual(['/k/init.cpio']);
    expect(values(a, '-append')).toEqual(['console=ttyS0 reboot=t panic=-1']);
    expect(values(a, '-chardev')).toEqual(['socket,id=vhu0,fd=3', 'socket,id=vhu1,fd=4', 'socket,id=vhu2,fd=5']);
    expect(values(a, '-device')).toEqual([
      'vhost-user-blk,chardev=vhu0',
      'vhost-user-vsock-device,chardev=vhu1',
      'vhost-user-rng,chardev=vhu2',
    ]);
  });

  it('puts the NIC on a vhost-user netdev QEMU connects to by path, with its MAC', () => {
    const a = qemuMicrovmArgs({ ...base, net: { socket: 'net.sock', mac: '02:42:0a:00:00:02' } });
    expect(values(a, '-chardev').slice(3)).toEqual(['socket,id=vhunet,path=net.sock']);
    expect(values(a, '-netdev')).toEqual(['vhost-user,id=net0,chardev=vhunet']);
    expect(values(a, '-device').slice(3)).toEqual(['virtio-net-device,netdev=net0,mac=02:42:0a:00:00:02']);
    expect(qemuMicrovmArgs(base)).not.toContain('-netdev');
  });

  it('leaves out the initrd when there is none and works without devices', () => {
    const a = qemuMicrovmArgs({ ...base, initrd: undefined, vhostUser: [] });
    expect(a).not.toContain('-initrd');
    expect(a).not.toContain('-device');
  });

  it.each([
    [{ memoryMiB: 8 }, /memory 8 MiB/],
    [{ memoryMiB: 1.5 }, /memory/],
    [{ vcpus: 0 }, /0 vCPUs/],
    [{ kernel: '' }, /no kernel/],
    [{ cmdline: 'a\nb' }, /newline/],
    [{ vhostUser: [{ kind: 'blk', fd: 2 }] }, /fd 2; need 3/],
    [
      {
        vhostUser: [
          { kind: 'blk', fd: 3 },
          { kind: 'rng', fd: 3 },
        ],
      },
      /fd 3 given to two/,
    ],
    [{ vhostUser: [{ kind: 'net', fd: 3 }] }, /unknown vhost-user device kind "net"/],
    [{ net: { socket: 'net.sock', mac: '02:42:0a' } }, /NIC MAC/],
    [{ net: { socket: 'a,server=on', mac: '02:42:0a:00:00:02' } }, /NIC socket path/],
  ] as [Partial<QemuMicrovmOptions>, RegExp][])('refuses %j', (over, why) => {
    expect(() => qemuMicrovmArgs({ ...base, ...over })).toThrow(InvalidParameterError);
    expect(() => qemuMicrovmArgs({ ...base, ...over })).toThrow(why);
  });
});

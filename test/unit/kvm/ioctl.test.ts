import { describe, it, expect } from 'vitest';
import { KVM_IOCTLS, _IOC, _IOR, _IOW, _IOWR, _IO, ioctlName, KVM_RUN } from '../../../src/kvm/ioctl.js';
import { KvmCap, KvmExit } from '../../../src/kvm/structs.js';
import { runC, parsePairs } from '../../fixtures/guests/cc.js';

describe('ioctl encoding', () => {
  it('encodes direction, size, type and nr as asm-generic/ioctl.h', () => {
    expect(_IO(0xae, 0x80)).toBe(0xae80);
    expect(_IOR(0xae, 0x81, 144)).toBe(0x8090ae81);
    expect(_IOW(0xae, 0x46, 32)).toBe(0x4020ae46);
    expect(_IOWR(0xae, 0x05, 8)).toBe(0xc008ae05);
    expect(() => _IOC(1, 0xae, 1, 1 << 14)).toThrow(RangeError);
  });
  it('names requests', () => {
    expect(ioctlName(KVM_RUN)).toBe('KVM_RUN');
    expect(ioctlName(0x1234)).toBe('ioctl 0x1234');
  });
});

describe('KVM request numbers match <linux/kvm.h>', () => {
  const names = Object.keys(KVM_IOCTLS);
  const caps = Object.keys(KvmCap);
  const exits = Object.keys(KvmExit);
  const src = `#include <stdio.h>\n#include <linux/kvm.h>\nint main(void){\n${names
    .map((n) => `printf("${n} %lu\\n", (unsigned long)(${n}));`)
    .join('\n')}\n${caps.map((c) => `printf("KVM_CAP_${c} %d\\n", KVM_CAP_${c});`).join('\n')}\n${exits
    .map((e) => `printf("KVM_EXIT_${e} %d\\n", KVM_EXIT_${e});`)
    .join('\n')}\nreturn 0;}\n`;
  const got = parsePairs(runC(src));
  it.each(names)('%s', (n) => {
    expect(KVM_IOCTLS[n]).toBe(got.get(n));
  });
  it('capability numbers', () => {
    for (const c of caps) expect([c, KvmCap[c as keyof typeof KvmCap]]).toEqual([c, got.get(`KVM_CAP_${c}`)]);
  });
  it('exit reasons', () => {
    for (const e of exits) expect([e, KvmExit[e as keyof typeof KvmExit]]).toEqual([e, got.get(`KVM_EXIT_${e}`)]);
  });
});

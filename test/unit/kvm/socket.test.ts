import { describe, it, expect } from 'vitest';
import * as libc from '../../../src/kvm/libc.js';
import {
  SOCKET_LAYOUTS,
  socketpair,
  sendmsg,
  recvmsg,
  setCloexec,
  getCloexec,
  cmsgLen,
  cmsgSpace,
  MAX_FDS,
  AF_UNIX,
  SOCK_STREAM,
  SOCK_CLOEXEC,
  SOL_SOCKET,
  SCM_RIGHTS,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  MSG_CMSG_CLOEXEC,
  MSG_CTRUNC,
} from '../../../src/kvm/socket.js';
import { Layout } from '../../../src/kvm/layout.js';
import { runC, parsePairs } from '../../fixtures/guests/cc.js';

describe('socket struct layouts and constants match gcc', () => {
  const lines: string[] = [];
  for (const l of SOCKET_LAYOUTS) {
    lines.push(`printf("${l.cName}|sizeof %zu\\n", sizeof(${l.cName}));`);
    for (const name of Object.keys(l.fields)) {
      lines.push(`printf("${l.cName}|${name} %zu\\n", offsetof(${l.cName}, ${name}));`);
      lines.push(`printf("${l.cName}|${name}#size %zu\\n", sizeof(((${l.cName}*)0)->${name}));`);
    }
  }
  const consts = { AF_UNIX, SOCK_STREAM, SOCK_CLOEXEC, SOL_SOCKET, SCM_RIGHTS, MSG_DONTWAIT, MSG_NOSIGNAL, MSG_CMSG_CLOEXEC, MSG_CTRUNC };
  for (const k of Object.keys(consts)) lines.push(`printf("${k} %ld\\n", (long)${k});`);
  lines.push('printf("CMSG_LEN3 %zu\\nCMSG_SPACE3 %zu\\nCMSG_SPACE8 %zu\\n", CMSG_LEN(12), CMSG_SPACE(12), CMSG_SPACE(32));');
  const src = `#define _GNU_SOURCE\n#include <stdio.h>\n#include <stddef.h>\n#include <sys/socket.h>\n#include <sys/uio.h>\nint main(void){\n${lines.join('\n')}\nreturn 0;}\n`;
  const got = parsePairs(runC(src).replaceAll('struct ', 'struct_'));
  const key = (l: Layout<object>, s: string) => `${l.cName!.replace('struct ', 'struct_')}|${s}`;

  it.each(SOCKET_LAYOUTS.map((l) => [l.cName, l] as const))('%s', (_n, l) => {
    expect(l.size).toBe(got.get(key(l, 'sizeof')));
    for (const name of Object.keys(l.fields)) {
      expect([name, l.offsetOf(name)]).toEqual([name, got.get(key(l, name))]);
    }
  });
  it('constants and CMSG_LEN/CMSG_SPACE', () => {
    for (const [k, v] of Object.entries(consts)) expect([k, v]).toEqual([k, got.get(k)]);
    expect(cmsgLen(3)).toBe(got.get('CMSG_LEN3'));
    expect(cmsgSpace(3)).toBe(got.get('CMSG_SPACE3'));
    expect(cmsgSpace(MAX_FDS)).toBe(got.get('CMSG_SPACE8'));
  });
});

describe('socketpair, sendmsg/recvmsg with SCM_RIGHTS', () => {
  it('passes data and descriptors that refer to the same files; EAGAIN is -1; EOF is 0', () => {
    const [a, b] = socketpair();
    const e = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
    try {
      const buf = new Uint8Array(16);
      expect(recvmsg(b, buf)).toEqual({ bytes: -1, fds: [] });
      expect(sendmsg(a, new Uint8Array([1, 2, 3]), [e, e])).toBe(3);
      const r = recvmsg(b, buf);
      expect(r.bytes).toBe(3);
      expect([...buf.subarray(0, 3)]).toEqual([1, 2, 3]);
      expect(r.fds).toHaveLength(2);
      expect(r.fds).not.toContain(e);
      // MSG_CMSG_CLOEXEC: received fds never leak into children.
      for (const fd of r.fds) expect(getCloexec(fd)).toBe(true);
      libc.eventfdSignal(r.fds[0]!, 7n);
      const c = new Uint8Array(8);
      expect(libc.read(e, c)).toBe(8);
      expect(c[0]).toBe(7);
      for (const fd of r.fds) libc.close(fd);
      libc.close(a);
      expect(recvmsg(b, buf).bytes).toBe(0);
    } finally {
      libc.close(e);
      libc.close(b);
    }
  });

  it('reads a message in pieces; descriptors come with the first piece', () => {
    const [a, b] = socketpair();
    const e = libc.eventfd();
    try {
      sendmsg(a, new Uint8Array(10).fill(9), [e]);
      const first = recvmsg(b, new Uint8Array(4));
      expect(first.bytes).toBe(4);
      expect(first.fds).toHaveLength(1);
      const rest = recvmsg(b, new Uint8Array(100));
      expect(rest).toEqual({ bytes: 6, fds: [] });
      libc.close(first.fds[0]!);
    } finally {
      for (const fd of [a, b, e]) libc.close(fd);
    }
  });

  it('refuses more than MAX_FDS descriptors before sending', () => {
    const [a, b] = socketpair();
    try {
      expect(() => sendmsg(a, new Uint8Array(1), Array(MAX_FDS + 1).fill(a))).toThrow(/at most 8/);
    } finally {
      libc.close(a);
      libc.close(b);
    }
  });

  it('clears and sets FD_CLOEXEC', () => {
    const [a, b] = socketpair();
    try {
      expect(getCloexec(a)).toBe(true);
      setCloexec(a, false);
      expect(getCloexec(a)).toBe(false);
      setCloexec(a, true);
      expect(getCloexec(a)).toBe(true);
      expect(() => setCloexec(-1, true)).toThrow(/EBADF/);
    } finally {
      libc.close(a);
      libc.close(b);
    }
  });
});

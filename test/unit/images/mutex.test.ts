import { describe, it, expect } from 'vitest';
import { Mutex, Semaphore, mapLimit } from '../../../src/images/mutex.js';

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('Semaphore', () => {
  it('admits `limit` holders, queues the rest in order, and hands a released slot to the next waiter', async () => {
    const s = new Semaphore(2);
    const order: string[] = [];
    const a = await s.acquire();
    const b = await s.acquire();
    const c = s.acquire().then((rel) => (order.push('c'), rel));
    const d = s.acquire().then((rel) => (order.push('d'), rel));
    await tick();
    expect(order).toEqual([]);
    a();
    // releasing twice frees one slot only
    a();
    await tick();
    expect(order).toEqual(['c']);
    b();
    await tick();
    expect(order).toEqual(['c', 'd']);
    // a newcomer waits behind nobody once slots are free again
    (await c)();
    (await d)();
    const e = await s.acquire();
    const f = await s.acquire();
    let g = false;
    // the acquire must wait: the test looks at `g`, not at this promise
    void s.acquire().then(() => (g = true));
    await tick();
    expect(g).toBe(false);
    e();
    f();
  });

  it('treats a limit below one as one', async () => {
    const s = new Semaphore(0);
    const r = await s.acquire();
    let second = false;
    // the acquire must wait: the test looks at `second`, not at this promise
    void s.acquire().then(() => (second = true));
    await tick();
    expect(second).toBe(false);
    r();
    await tick();
    expect(second).toBe(true);
  });
});

describe('Mutex and mapLimit', () => {
  it('runs one at a time, in order', async () => {
    const m = new Mutex();
    const seen: number[] = [];
    await Promise.all(
      [1, 2, 3].map((i) =>
        m.run(async () => {
          await tick();
          seen.push(i);
        }),
      ),
    );
    expect(seen).toEqual([1, 2, 3]);
  });

  it('mapLimit keeps at most `limit` in flight and rejects with the first error after all settled', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapLimit([1, 2, 3, 4, 5], 2, async (x) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await tick();
      inFlight--;
      return x * 2;
    });
    expect(out).toEqual([2, 4, 6, 8, 10]);
    expect(most).toBe(2);
    await expect(
      mapLimit([1, 2], 2, async (x) => {
        if (x === 1) throw new Error('first');
        return x;
      }),
    ).rejects.toThrow('first');
  });
});

/**
 * sync(2) without a child process. Benchmarks that host tvm's code in their own process must
 * not fork between runs: after a fork every page of the parent is copy-on-write, so the next
 * run pays a page fault for each page it writes (15 us each on a PVM guest), a cost that
 * belongs to the harness, not to what is measured.
 */
import koffi from 'koffi';

let syncFn: (() => void) | undefined;

export function syncFilesystems(): void {
  syncFn ??= koffi.load('libc.so.6').func('void sync(void)') as () => void;
  syncFn();
}

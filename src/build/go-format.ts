/**
 * Go's fmt as the classic builder's history lines use it (moby builder/dockerfile/dispatchers.go
 * writes `fmt.Sprintf("HEALTHCHECK %q", runConfig.Healthcheck)`): %q of a string, of a rune
 * (an int under %q is a character literal), a time.Duration's String(), and the %q of a
 * *container.HealthConfig, `&{[test...] "interval" "timeout" "start-period" 'retries'}`.
 */

/** A rune Go's strconv.IsPrint calls printable: letters, marks, numbers, punctuation, symbols, the ASCII space. */
function isPrint(cp: number): boolean {
  if (cp < 0x80) return cp >= 0x20 && cp < 0x7f;
  return /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(String.fromCodePoint(cp));
}

const SHORT: Record<number, string> = { 7: '\\a', 8: '\\b', 12: '\\f', 10: '\\n', 13: '\\r', 9: '\\t', 11: '\\v' };

/** strconv's appendEscapedRune (not ASCII-only: printable runes stay as they are). */
function escapeRune(cp: number, quote: string): string {
  if (cp === quote.codePointAt(0) || cp === 0x5c) return `\\${String.fromCodePoint(cp)}`;
  if (cp >= 0 && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff) && isPrint(cp)) return String.fromCodePoint(cp);
  if (SHORT[cp]) return SHORT[cp];
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  // an invalid rune is written as the replacement character's escape
  if (cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
  return cp < 0x10000 ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\U${cp.toString(16).padStart(8, '0')}`;
}

/** Go's %q of a string (strconv.Quote). */
export function goQuoteString(s: string): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch.codePointAt(0)!, '"');
  return `${out}"`;
}

/** Go's %q of an integer: a single-quoted character literal (strconv.QuoteRune). */
export function goQuoteRune(n: number): string {
  return `'${escapeRune(n, "'")}'`;
}

/** Go's time.Duration.String of nanoseconds: "0s", "1.5s", "5m0s", "1h0m0s", "100ms", "2µs". */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  const neg = ns < 0;
  let u = BigInt(Math.abs(Math.round(ns)));
  const frac = (v: bigint, digits: number): string => {
    // v in units of 10^-digits; trailing zeros dropped
    const p = 10n ** BigInt(digits);
    const f = (v % p).toString().padStart(digits, '0').replace(/0+$/, '');
    return `${v / p}${f ? `.${f}` : ''}`;
  };
  let out: string;
  if (u < 1_000_000_000n) {
    if (u < 1000n) out = `${u}ns`;
    else if (u < 1_000_000n) out = `${frac(u, 3)}µs`;
    else out = `${frac(u, 6)}ms`;
  } else {
    const secs = frac(u % 60_000_000_000n, 9);
    u /= 60_000_000_000n;
    out = `${secs}s`;
    if (u > 0n) {
      out = `${u % 60n}m${out}`;
      u /= 60n;
      if (u > 0n) out = `${u}h${out}`;
    }
  }
  return neg ? `-${out}` : out;
}

export interface HealthConfigLike {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  Retries?: number;
}

/** `%q` of a *container.HealthConfig as Docker 20.10's has its fields (no StartInterval yet). */
export function goQuoteHealthConfig(h: HealthConfigLike): string {
  const test = `[${(h.Test ?? []).map(goQuoteString).join(' ')}]`;
  const d = (n: number | undefined) => goQuoteString(goDuration(n ?? 0));
  return `&{${test} ${d(h.Interval)} ${d(h.Timeout)} ${d(h.StartPeriod)} ${goQuoteRune(h.Retries ?? 0)}}`;
}

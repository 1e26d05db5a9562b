import { describe, expect, it } from 'vitest';
import { goDuration, goQuoteHealthConfig, goQuoteRune, goQuoteString } from '../../../src/build/go-format.js';

describe("Go's fmt for the classic builder's history", () => {
  it('time.Duration.String', () => {
    expect(goDuration(0)).toBe('0s');
    expect(goDuration(30e9)).toBe('30s');
    expect(goDuration(1.5e9)).toBe('1.5s');
    expect(goDuration(300e9)).toBe('5m0s');
    expect(goDuration(3600e9)).toBe('1h0m0s');
    expect(goDuration(3723.25e9)).toBe('1h2m3.25s');
    expect(goDuration(100e6)).toBe('100ms');
    expect(goDuration(1e6 + 500)).toBe('1.0005ms');
    expect(goDuration(2000)).toBe('2µs');
    expect(goDuration(7)).toBe('7ns');
  });
  it('%q of strings and runes', () => {
    expect(goQuoteString('curl -f "http://x/" || exit 1')).toBe('"curl -f \\"http://x/\\" || exit 1"');
    expect(goQuoteString('a\tb\\c\x01\x7fé')).toBe('"a\\tb\\\\c\\x01\\x7fé"');
    expect(goQuoteString('\u00ad')).toBe('"\\u00ad"');
    expect(goQuoteRune(0)).toBe("'\\x00'");
    expect(goQuoteRune(3)).toBe("'\\x03'");
    expect(goQuoteRune(10)).toBe("'\\n'");
    expect(goQuoteRune(39)).toBe("'\\''");
    expect(goQuoteRune(65)).toBe("'A'");
  });
  it('%q of a *HealthConfig', () => {
    expect(
      goQuoteHealthConfig({ Test: ['CMD-SHELL', 'curl -f http://localhost/ || exit 1'], Interval: 300e9, Timeout: 3e9, Retries: 3 }),
    ).toBe('&{["CMD-SHELL" "curl -f http://localhost/ || exit 1"] "5m0s" "3s" "0s" \'\\x03\'}');
    expect(goQuoteHealthConfig({ Test: ['NONE'] })).toBe('&{["NONE"] "0s" "0s" "0s" \'\\x00\'}');
  });
});

/**
 * sha256 content digests and a streaming verifier: bytes pass through unchanged while their
 * count and hash are checked against what a descriptor promised. Over-long bodies fail at the
 * first excess byte (a lying registry cannot fill the disk); short ones fail at the end.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { FormatError } from '../errors.js';
import { validateDigest } from './reference.js';

export const SHA256_PREFIX = 'sha256:';

export class DigestMismatchError extends FormatError {
  constructor(what: string, expected: string, actual: string) {
    super(`${what}: digest mismatch: expected ${expected}, got ${actual}`, 'ERR_DIGEST_MISMATCH');
  }
}

export class SizeMismatchError extends FormatError {
  constructor(what: string, expected: number, actual: number, truncated: boolean) {
    super(
      truncated
        ? `${what}: truncated: expected ${expected} bytes, got ${actual}`
        : `${what}: size mismatch: expected ${expected} bytes, got more (${actual} so far)`,
      truncated ? 'ERR_TRUNCATED' : 'ERR_SIZE_MISMATCH',
    );
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function sha256Digest(data: Uint8Array | string): string {
  return SHA256_PREFIX + sha256Hex(data);
}

/** The hex part of a sha256 digest, validated (other algorithms are refused: we store sha256 only). */
export function digestHex(digest: string): string {
  validateDigest(digest);
  if (!digest.startsWith(SHA256_PREFIX)) {
    throw new FormatError(`unsupported digest algorithm in ${digest}: only sha256 is supported`, 'ERR_UNSUPPORTED_DIGEST');
  }
  return digest.slice(SHA256_PREFIX.length);
}

export interface Expected {
  digest?: string;
  size?: number;
}

/** Hashes and counts what flows through; `result()` is valid after the stream ends. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private count = 0;
  private final: { digest: string; size: number } | undefined;

  constructor(
    private readonly what: string,
    private readonly expected: Expected = {},
  ) {
    super();
    if (expected.digest !== undefined) digestHex(expected.digest);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.expected.size !== undefined && this.count > this.expected.size) {
      cb(new SizeMismatchError(this.what, this.expected.size, this.count, false));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.expected.size !== undefined && this.count !== this.expected.size) {
      cb(new SizeMismatchError(this.what, this.expected.size, this.count, true));
      return;
    }
    const digest = SHA256_PREFIX + this.hash.digest('hex');
    if (this.expected.digest !== undefined && digest !== this.expected.digest) {
      cb(new DigestMismatchError(this.what, this.expected.digest, digest));
      return;
    }
    this.final = { digest, size: this.count };
    cb();
  }

  get bytes(): number {
    return this.count;
  }

  result(): { digest: string; size: number } {
    if (!this.final) throw new Error('HashingStream.result() before end');
    return this.final;
  }
}

/** Verifies a whole buffer against a descriptor. */
export function verifyBuffer(what: string, data: Uint8Array, expected: Expected): string {
  if (expected.size !== undefined && data.length !== expected.size) {
    throw new SizeMismatchError(what, expected.size, data.length, data.length < expected.size);
  }
  const digest = sha256Digest(data);
  if (expected.digest !== undefined && digest !== expected.digest) throw new DigestMismatchError(what, expected.digest, digest);
  return digest;
}

import { randomBytes } from 'node:crypto';
import { InvalidParameterError } from '../errors.js';

/** Docker's object IDs: 32 random bytes as 64 lowercase hex digits. */
export function newId(): string {
  // Docker re-rolls IDs that look like numbers so a short ID can never be taken for one.
  for (;;) {
    const id = randomBytes(32).toString('hex');
    if (!/^\d+$/.test(id.slice(0, 12))) return id;
  }
}

export function isFullId(s: string): boolean {
  return /^[0-9a-f]{64}$/.test(s);
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** Container names as Docker accepts them, with or without the leading '/'. */
const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Returns the canonical '/name' form or throws Docker's message. */
/**
 * Names travel in URL paths (/containers/NAME/...): the API server takes path parameters up to
 * MAX_PARAM_LENGTH, so a longer name would be created but never reachable by name again.
 */
export const MAX_NAME_LENGTH = 1024;

export function validateName(name: string): string {
  if (name.length > MAX_NAME_LENGTH) {
    throw new InvalidParameterError(`Invalid container name (${name.slice(0, 32)}...): longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (!NAME_RE.test(name)) {
    throw new InvalidParameterError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
  return name.startsWith('/') ? name : `/${name}`;
}

const LEFT = [
  'admiring',
  'brave',
  'busy',
  'calm',
  'clever',
  'cool',
  'dazzling',
  'eager',
  'elastic',
  'epic',
  'festive',
  'focused',
  'gallant',
  'gifted',
  'happy',
  'hopeful',
  'jolly',
  'keen',
  'kind',
  'lucid',
  'modest',
  'nice',
  'nifty',
  'optimistic',
  'peaceful',
  'quirky',
  'relaxed',
  'serene',
  'sharp',
  'stoic',
  'tender',
  'upbeat',
  'vibrant',
  'wizardly',
  'youthful',
  'zealous',
];
const RIGHT = [
  'babbage',
  'bell',
  'curie',
  'darwin',
  'dijkstra',
  'einstein',
  'euler',
  'faraday',
  'fermat',
  'galileo',
  'hopper',
  'hypatia',
  'kepler',
  'knuth',
  'lamport',
  'lovelace',
  'mccarthy',
  'meitner',
  'newton',
  'noether',
  'pascal',
  'ritchie',
  'shannon',
  'thompson',
  'torvalds',
  'turing',
  'wozniak',
];

/** A random adjective_scientist name, like Docker's; `taken` avoids collisions. */
export function randomName(taken: (name: string) => boolean): string {
  for (let i = 0; ; i++) {
    const l = LEFT[randomBytes(1)[0]! % LEFT.length]!;
    const r = RIGHT[randomBytes(1)[0]! % RIGHT.length]!;
    const name = i < 10 ? `/${l}_${r}` : `/${l}_${r}${i}`;
    if (!taken(name)) return name;
  }
}

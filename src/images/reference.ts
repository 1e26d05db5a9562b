/**
 * Docker image references, parsed and normalised the way Docker's distribution/reference
 * package does (ParseNormalizedNamed + TagNameOnly), so that `alpine`, `library/alpine`,
 * `docker.io/library/alpine:latest` and `index.docker.io/library/alpine` all name one repo.
 *
 * Grammar (distribution/reference/regexp.go):
 *   reference   := name [ ":" tag ] [ "@" digest ]
 *   name        := [domain '/'] remote-name
 *   domain      := host [':' port-number]
 *   host        := domain-name | IPv4address | '[' IPv6address ']'
 *   remote-name := path-component ['/' path-component]*
 *   path-component := alpha-numeric [separator alpha-numeric]*
 *   separator   := /[_.]|__|[-]+/
 *   tag         := /[\w][\w.-]{0,127}/
 *   digest      := algorithm ":" hex
 */
import { InvalidParameterError } from '../errors.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
/** distribution/reference NameTotalLengthMax */
export const NAME_TOTAL_LENGTH_MAX = 255;

const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALNUM}(?:${SEPARATOR}${ALNUM})*`;
const DOMAIN_NAME_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const HOST = `(?:${DOMAIN_NAME_COMPONENT}(?:\\.${DOMAIN_NAME_COMPONENT})*|${IPV6})`;
const DOMAIN = `${HOST}(?::[0-9]+)?`;
const TAG = '[\\w][\\w.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';

const DOMAIN_RE = new RegExp(`^${DOMAIN}$`);
const REMOTE_NAME_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG_RE = new RegExp(`^${TAG}$`);
const DIGEST_RE = new RegExp(`^${DIGEST}$`);
const ANCHORED_ID_RE = /^[a-f0-9]{64}$/;

/** Registered digest algorithms and their hex lengths (opencontainers/go-digest). */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

export interface Reference {
  /** registry host[:port], e.g. 'docker.io', '127.0.0.1:5000' */
  domain: string;
  /** repository path inside the registry, e.g. 'library/alpine' */
  path: string;
  tag?: string;
  digest?: string;
}

function invalid(ref: string, why: string): InvalidParameterError {
  return new InvalidParameterError(`invalid reference format: ${why}: "${ref}"`, 'ERR_INVALID_REFERENCE');
}

/** Validates `algorithm:hex` as go-digest does for registered algorithms. */
export function validateDigest(d: string): string {
  if (!DIGEST_RE.test(d)) throw new InvalidParameterError(`invalid digest format: "${d}"`, 'ERR_INVALID_DIGEST');
  const i = d.indexOf(':');
  const alg = d.slice(0, i);
  const hex = d.slice(i + 1);
  const want = DIGEST_HEX_LENGTH[alg];
  if (want === undefined) throw new InvalidParameterError(`unsupported digest algorithm: "${d}"`, 'ERR_INVALID_DIGEST');
  if (hex.length !== want || !/^[a-f0-9]+$/.test(hex)) {
    throw new InvalidParameterError(`invalid checksum digest length or characters: "${d}"`, 'ERR_INVALID_DIGEST');
  }
  return d;
}

/**
 * splitDockerDomain: the first component is a registry only if it contains '.' or ':', is
 * 'localhost', or has upper-case letters (which a repository path never has).
 */
function splitDomain(name: string): { domain: string; remainder: string } {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  if (i === -1) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    const first = name.slice(0, i);
    const isHost = first.includes('.') || first.includes(':') || first === 'localhost' || first.toLowerCase() !== first;
    if (isHost) {
      domain = first;
      remainder = name.slice(i + 1);
    } else {
      domain = DEFAULT_DOMAIN;
      remainder = name;
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return { domain, remainder };
}

/**
 * Parses a user-given reference into its normalised form. Does not add a default tag: see
 * `withDefaultTag`. Throws InvalidParameterError (400) with Docker's wording.
 */
export function parseReference(input: string): Reference {
  const ref = input;
  if (ref.length === 0) throw invalid(ref, 'repository name must have at least one component');
  if (ANCHORED_ID_RE.test(ref)) {
    throw new InvalidParameterError(
      `invalid repository name (${ref}), cannot specify 64-byte hexadecimal strings`,
      'ERR_INVALID_REFERENCE',
    );
  }
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) throw invalid(ref, 'invalid digest');
    validateDigest(digest);
  }
  // A tag is after the last ':' that follows the last '/', so 'host:5000/app' has no tag.
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG_RE.test(tag)) throw invalid(ref, 'invalid tag');
  }
  const { domain, remainder } = splitDomain(rest);
  if (remainder.toLowerCase() !== remainder) {
    throw new InvalidParameterError(`invalid reference format: repository name (${remainder}) must be lowercase`, 'ERR_INVALID_REFERENCE');
  }
  if (remainder.length === 0) throw invalid(ref, 'repository name must have at least one component');
  if (!DOMAIN_RE.test(domain)) throw invalid(ref, 'invalid domain');
  if (!REMOTE_NAME_RE.test(remainder)) throw invalid(ref, 'invalid repository name');
  const full = `${domain}/${remainder}`;
  if (full.length > NAME_TOTAL_LENGTH_MAX) {
    throw invalid(ref, `repository name must not be more than ${NAME_TOTAL_LENGTH_MAX} characters`);
  }
  return { domain, path: remainder, ...(tag !== undefined && { tag }), ...(digest !== undefined && { digest }) };
}

/** TagNameOnly: a reference with neither tag nor digest gets ':latest'. */
export function withDefaultTag(r: Reference): Reference {
  if (r.tag === undefined && r.digest === undefined) return { ...r, tag: DEFAULT_TAG };
  return r;
}

/** parseReference + withDefaultTag: what `docker pull NAME` means. */
export function parseNormalized(input: string): Reference {
  return withDefaultTag(parseReference(input));
}

/** 'docker.io/library/alpine' */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** The full normalised string: 'docker.io/library/alpine:3.20@sha256:...' */
export function formatReference(r: Reference): string {
  return repositoryName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}

/** FamiliarName: the short name Docker shows ('alpine', 'team/app', '127.0.0.1:5000/app'). */
export function familiarName(r: Pick<Reference, 'domain' | 'path'>): string {
  if (r.domain !== DEFAULT_DOMAIN) return `${r.domain}/${r.path}`;
  if (r.path.startsWith(OFFICIAL_REPO_PREFIX) && !r.path.slice(OFFICIAL_REPO_PREFIX.length).includes('/')) {
    return r.path.slice(OFFICIAL_REPO_PREFIX.length);
  }
  return r.path;
}

/** FamiliarString: familiar name plus tag and digest ('alpine:latest'). */
export function familiarString(r: Reference): string {
  return familiarName(r) + (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}

/** Parses a stored full reference back (it is already normalised). */
export function familiarize(full: string): string {
  return familiarString(parseReference(full));
}

/**
 * Parsed nodes -> build stages of typed instructions, checked as a whole before anything runs
 * (as buildkit's frontend/dockerfile/instructions, which moby's classic builder uses): argument
 * counts, the flags each instruction takes, ONBUILD's limits, and the ARGs before the first
 * FROM. Variables are not expanded here: that needs each step's environment (dispatchers.ts).
 */
import { DockerfileParseError } from './errors.js';
import { parseDockerfile, type Directives, type Node } from './parser.js';

export type FlagValues = Record<string, string | boolean>;

export interface Instruction {
  kind: string;
  node: Node;
  flags: FlagValues;
}

export interface Stage {
  /** `FROM image AS name`, lower-cased */
  name?: string;
  /** the FROM image as written (expanded against the meta ARGs at build time) */
  base: string;
  platform?: string;
  index: number;
  from: Node;
  instructions: Instruction[];
}

export interface Dockerfile {
  directives: Directives;
  /** ARGs before the first FROM */
  metaArgs: Instruction[];
  stages: Stage[];
  warnings: string[];
}

type FlagKind = 'string' | 'bool';

const FLAGS: Record<string, Record<string, FlagKind>> = {
  from: { platform: 'string' },
  copy: { from: 'string', chown: 'string', chmod: 'string' },
  add: { chown: 'string', chmod: 'string' },
  healthcheck: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

/** flags only BuildKit knows: named as such instead of "unknown flag" */
const BUILDKIT_FLAGS: Record<string, string[]> = {
  run: ['mount', 'network', 'security'],
  copy: ['link', 'parents', 'exclude'],
  add: ['link', 'checksum', 'keep-git-dir', 'exclude'],
};

function parseFlags(node: Node): FlagValues {
  const allowed = FLAGS[node.cmd] ?? {};
  const out: FlagValues = {};
  for (const f of node.flags) {
    const eq = f.indexOf('=');
    const name = eq < 0 ? f : f.slice(0, eq);
    const value = eq < 0 ? undefined : f.slice(eq + 1);
    const kind = allowed[name];
    if (!kind) {
      if (BUILDKIT_FLAGS[node.cmd]?.includes(name)) {
        throw new DockerfileParseError(
          node.startLine,
          `the --${name} option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled`,
        );
      }
      throw new DockerfileParseError(node.startLine, `unknown flag: ${name}`);
    }
    if (name in out) throw new DockerfileParseError(node.startLine, `Duplicate flag specified: ${name}`);
    if (kind === 'bool') {
      if (value !== undefined && !['true', 'false'].includes(value.toLowerCase())) {
        throw new DockerfileParseError(node.startLine, `expecting boolean value for flag ${name}, not: ${value}`);
      }
      out[name] = value === undefined || value.toLowerCase() === 'true';
    } else {
      if (value === undefined) throw new DockerfileParseError(node.startLine, `missing a value on flag: ${name}`);
      out[name] = value;
    }
  }
  return out;
}

const upper = (n: Node) => n.cmd.toUpperCase();

/** Argument-count rules, with buildkit's messages. */
function checkArgs(node: Node): void {
  const n = node.args.length;
  const fail = (msg: string): never => {
    throw new DockerfileParseError(node.startLine, msg);
  };
  switch (node.cmd) {
    case 'from':
      if (n !== 1 && n !== 3) fail('FROM requires either one or three arguments');
      if (n === 3 && node.args[1]!.toLowerCase() !== 'as') fail('FROM requires either one or three arguments');
      if (n === 3 && !/^[a-z][a-z0-9-_.]*$/i.test(node.args[2]!))
        fail(`invalid name for build stage: "${node.args[2]}", name can't start with a number or contain symbols`);
      break;
    case 'copy':
    case 'add':
      if (n < 2) fail(`${upper(node)} requires at least two arguments, but only one was provided. Destination could not be determined.`);
      break;
    case 'workdir':
    case 'user':
    case 'stopsignal':
    case 'maintainer':
      if (n !== 1) fail(`${upper(node)} requires exactly one argument`);
      break;
    case 'env':
    case 'label':
    case 'arg':
    case 'run':
    case 'cmd':
    case 'entrypoint':
    case 'expose':
    case 'volume':
    case 'onbuild':
    case 'healthcheck':
      if (n === 0) {
        if (node.cmd === 'cmd' || node.cmd === 'entrypoint') break; // `CMD` alone clears it, as in Docker
        fail(`${upper(node)} requires at least one argument`);
      }
      break;
    case 'shell':
      if (!node.json) fail('SHELL requires the arguments to be in JSON form');
      if (n === 0) fail('SHELL requires at least one argument');
      break;
  }
  if (node.cmd === 'arg') {
    for (const a of node.args) {
      const name = a.split('=')[0]!;
      if (name === '') fail('ARG names can not be blank');
    }
  }
  if (node.cmd === 'healthcheck' && node.args[0] === 'NONE' && node.flags.length > 0) fail('HEALTHCHECK NONE takes no flags');
}

export function instruction(node: Node): Instruction {
  checkArgs(node);
  const flags = parseFlags(node);
  if (node.next) instruction(node.next);
  return { kind: node.cmd, node, flags };
}

/** Parses and checks a whole Dockerfile. */
export function parseInstructions(text: string): Dockerfile {
  const { directives, nodes, warnings } = parseDockerfile(text);
  const metaArgs: Instruction[] = [];
  const stages: Stage[] = [];
  for (const node of nodes) {
    const ins = instruction(node);
    if (node.cmd === 'from') {
      const name = node.args.length === 3 ? node.args[2]!.toLowerCase() : undefined;
      if (name && stages.some((s) => s.name === name)) throw new DockerfileParseError(node.startLine, `duplicate name ${name}`);
      if (name && node.args[0]!.toLowerCase() === name)
        throw new DockerfileParseError(node.startLine, `circular dependency detected on stage: ${name}`);
      const platform = typeof ins.flags.platform === 'string' ? ins.flags.platform : undefined;
      stages.push({
        ...(name && { name }),
        base: node.args[0]!,
        ...(platform && { platform }),
        index: stages.length,
        from: node,
        instructions: [],
      });
      continue;
    }
    const stage = stages[stages.length - 1];
    if (!stage) {
      if (node.cmd !== 'arg') throw new DockerfileParseError(node.startLine, `no build stage in current context`);
      metaArgs.push(ins);
      continue;
    }
    const from = ins.flags.from;
    if (typeof from === 'string' && (from.toLowerCase() === stage.name || from === String(stage.index))) {
      throw new DockerfileParseError(node.startLine, `invalid from flag value ${from}: refers to current build stage`);
    }
    stage.instructions.push(ins);
  }
  if (stages.length === 0) throw new DockerfileParseError(1, 'file with no instructions');
  return { directives, metaArgs, stages, warnings };
}

/**
 * One dispatcher per Dockerfile instruction (moby's builder/dockerfile/dispatchers.go): each
 * expands its arguments in the step's environment, computes the new run config and the
 * history's created_by, and hands the builder what the step's layer is made of.
 *
 * created_by follows moby: `/bin/sh -c #(nop)  ENV a=b` for config-only steps (the shell is the
 * stage's SHELL), `|N k=v ... /bin/sh -c cmd` for a RUN with build args in effect,
 * `COPY file:<sha> in /dest ` for COPY/ADD.
 */
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import type { ImageRunConfig } from '../images/types.js';
import { parseSignal } from '../runtime/signals.js';
import type { BuildRun, StageState, StepResult } from './builder.js';
import { copyHash, globIn, isGlob, planCopy, type CopySource } from './copy.js';
import { BuildError } from './errors.js';
import { goQuoteHealthConfig, goQuoteString } from './go-format.js';
import type { Instruction } from './instructions.js';
import { processWord, processWords } from './lex.js';

type Dispatcher = (b: BuildRun, st: StageState, ins: Instruction) => Promise<void>;

const DEFAULT_SHELL = ['/bin/sh', '-c'];

/** Go's %q of a []string: ["a" "b"] */
/** Go's %q of a []string, as moby's history lines write CMD and ENTRYPOINT. */
function goQuote(list: readonly string[]): string {
  return `[${list.map(goQuoteString).join(' ')}]`;
}

function shellOf(st: StageState): string[] {
  return st.runConfig.Shell?.length ? st.runConfig.Shell : DEFAULT_SHELL;
}

/** A config-only step: the new config and its `#(nop)` history entry. */
function meta(b: BuildRun, st: StageState, comment: string, runConfig: ImageRunConfig, extra: Partial<StepResult> = {}): Promise<void> {
  return b.commit(st, { createdBy: [...shellOf(st), '#(nop) ', comment].join(' '), runConfig, ...extra });
}

function cloneConfig(st: StageState): ImageRunConfig {
  return structuredClone(st.runConfig);
}

function setEnv(env: string[], k: string, v: string): string[] {
  const out = env.filter((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) !== k);
  const i = env.findIndex((e) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e) === k);
  if (i >= 0) {
    const copy = [...env];
    copy[i] = `${k}=${v}`;
    return copy;
  }
  return [...out, `${k}=${v}`];
}

/** Command of CMD/ENTRYPOINT/RUN: exec form as given, shell form through the stage's SHELL. */
function commandOf(st: StageState, ins: Instruction): string[] {
  if (ins.node.json) return [...ins.node.args];
  if (ins.node.args.length === 0) return [];
  return [...shellOf(st), ins.node.args[0]!];
}

/** Go's time.ParseDuration for HEALTHCHECK flags, in nanoseconds. */
function duration(name: string, v: string | boolean | undefined): number {
  if (v === undefined || v === '') return 0;
  const s = String(v);
  const units: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let at = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * units[m[2]!]!;
    at = re.lastIndex;
  }
  if (at !== s.length || s === '') throw new BuildError(`time: invalid duration "${s}"`);
  if (total !== 0 && total < 1e6) throw new BuildError(`${name} cannot be less than 1ms`);
  return Math.round(total);
}

/** The directory above a pattern's first wildcard component, e.g. /app for /app/*.txt/x. */
function globBase(abs: string): string {
  const comps = abs.split('/').filter(Boolean);
  const i = comps.findIndex(isGlob);
  return `/${comps.slice(0, i).join('/')}`;
}

async function copyLike(b: BuildRun, st: StageState, ins: Instruction): Promise<void> {
  const instr = ins.kind === 'add' ? 'ADD' : 'COPY';
  const words = ins.node.args.map((a) => b.word(st, a));
  const destRaw = words.pop()!;
  const srcs = words;
  const flag = (n: string) => (typeof ins.flags[n] === 'string' ? b.word(st, ins.flags[n]) : undefined);
  const chown = flag('chown');
  const chmodText = flag('chmod');
  let chmod: number | undefined;
  if (chmodText !== undefined) {
    if (!/^[0-7]{1,4}$/.test(chmodText)) throw new BuildError(`invalid chmod parameter ${chmodText}: only octal modes are supported`);
    chmod = parseInt(chmodText, 8);
  }
  for (const s of srcs) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^git@/.test(s)) {
      throw new BuildError(
        `${instr} from a remote URL (${s}) is not supported by tvm: fetch it in a RUN step or add the file to the build context`,
      );
    }
  }
  const from = flag('from');
  const sources: CopySource[] = [];
  let fromKey: string | undefined;
  if (from !== undefined) {
    const stage = b.stageByRef(from);
    const imageId = stage ? await b.containerImage(stage) : (await b.image(from)).id;
    fromKey = imageId;
    // a pattern is matched in the directory above its first wildcard (moby walks the whole
    // filesystem; matches are the same: `*` never crosses a `/`)
    const abs = srcs.map((s) => path.posix.resolve('/', s));
    const fetchPath = (p: string) => (isGlob(p) ? globBase(p) : p);
    const { found } = await b.filesOf(imageId, [...new Set(abs.map(fetchPath))]);
    for (const [i, s] of srcs.entries()) {
      const p = abs[i]!;
      if (isGlob(s)) {
        const base = globBase(p);
        const host = found.get(base);
        const rest = path.posix.relative(base, p);
        for (const m of host ? await globIn(host, rest) : []) sources.push({ shown: s, host: path.join(host!, m), rel: m });
        continue;
      }
      const host = found.get(p);
      if (!host) throw new BuildError(`${instr} failed: stat ${p}: file does not exist in ${from}`, 'ERR_BUILD_COPY_SOURCE');
      sources.push({ shown: s, host, rel: path.posix.basename(p) || '.' });
    }
    if (sources.length === 0) throw new BuildError(`${instr} failed: no source files were specified`, 'ERR_BUILD_COPY_SOURCE');
  } else {
    for (const s of srcs) {
      if (isGlob(s)) {
        await b.ctx.resolve(path.posix.dirname(s), true, s); // refuses a pattern outside the context
        const matches = await globIn(b.ctx.root, s);
        for (const m of matches) sources.push({ shown: s, host: await b.ctx.resolve(m, true, s), rel: m });
        continue;
      }
      const host = await b.ctx.resolve(s, true, s);
      const st2 = await lstat(host).catch(() => undefined); // missing: Docker's error below
      if (!st2)
        throw new BuildError(
          `${instr} failed: file not found in build context or excluded by .dockerignore: stat ${s}: file does not exist`,
          'ERR_BUILD_COPY_SOURCE',
        );
      sources.push({ shown: s, host, rel: path.posix.normalize(s).replace(/^\/+/, '') || '.' });
    }
    if (sources.length === 0) throw new BuildError(`${instr} failed: no source files were specified`, 'ERR_BUILD_COPY_SOURCE');
  }
  if (sources.length > 1 && !(destRaw.endsWith('/') || destRaw.endsWith('/.') || destRaw === '.')) {
    throw new BuildError(`When using ${instr} with more than one source file, the destination must be a directory and end with a /`);
  }
  const hash = await copyHash(sources);
  const workdir = st.runConfig.WorkingDir || '/';
  await b.commit(st, {
    // moby's withCmdCommentString: one word, so one space after #(nop) (config-only steps have two)
    // and moby writes --chown right before the hash, with no space between (checked against dockerd 20.10)
    createdBy: [...shellOf(st), `#(nop) ${instr} ${chown !== undefined ? `--chown=${chown}` : ''}${hash} in ${destRaw} `].join(' '),
    runConfig: cloneConfig(st),
    key: { hash, chown: chown ?? null, chmod: chmod ?? null, from: fromKey ?? null, workdir },
    produce: (w) =>
      b.copyInto(st, w, async (id) => {
        const plan = await planCopy(instr, sources, destRaw, workdir, async (p) => (await b.statIn(id, p)) === 'directory');
        const missing = new Set<string>();
        for (const d of plan.mkdirs) if ((await b.statIn(id, d)) === undefined) missing.add(d);
        const owner = chown ? await resolveOwner(b, id, chown) : { uid: 0, gid: 0 };
        return { plan, owner, chmod, missing };
      }),
  });
}

/** `--chown=user[:group]`: numbers as they are, names from the image's /etc/passwd and /etc/group. */
async function resolveOwner(b: BuildRun, id: string, spec: string): Promise<{ uid: number; gid: number }> {
  const [user, groupGiven] = spec.split(':') as [string, string | undefined];
  const group = groupGiven ?? user;
  const lookup = async (file: string, name: string, what: string): Promise<number> => {
    if (/^\d+$/.test(name)) return Number(name);
    const text = (await b.readIn(id, file))?.toString('utf8');
    if (text === undefined)
      throw new BuildError(
        `unable to convert uid/gid chown string to host mapping: can't find uid for user ${name}: no such user: ${file} is missing`,
      );
    for (const line of text.split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
    }
    throw new BuildError(
      `unable to convert uid/gid chown string to host mapping: can't find ${what} for ${what === 'uid' ? 'user' : 'group'} ${name}: no such ${what === 'uid' ? 'user' : 'group'}: ${name}`,
    );
  };
  const uid = await lookup('/etc/passwd', user, 'uid');
  const gid = /^\d+$/.test(user) && groupGiven === undefined ? uid : await lookup('/etc/group', group, 'gid');
  return { uid, gid };
}

const DISPATCHERS: Record<string, Dispatcher> = {
  async env(b, st, ins) {
    const env = b.env(st);
    const c = cloneConfig(st);
    const pairs: string[] = [];
    // every pair of one ENV sees the environment before it (Docker's rule)
    for (let i = 0; i < ins.node.args.length; i += 2) {
      const k = processWord(ins.node.args[i]!, env, b.escape);
      const v = processWord(ins.node.args[i + 1]!, env, b.escape);
      c.Env = setEnv(c.Env ?? [], k, v);
      pairs.push(`${k}=${v}`);
    }
    await meta(b, st, `ENV ${pairs.join(' ')}`, c);
  },

  async label(b, st, ins) {
    const env = b.env(st);
    const literal = (ins as Instruction & { literal?: boolean }).literal === true;
    const c = cloneConfig(st);
    const labels = { ...(c.Labels ?? {}) };
    const pairs: string[] = [];
    for (let i = 0; i < ins.node.args.length; i += 2) {
      const k = literal ? ins.node.args[i]! : processWord(ins.node.args[i]!, env, b.escape);
      const v = literal ? ins.node.args[i + 1]! : processWord(ins.node.args[i + 1]!, env, b.escape);
      if (k === '') throw new BuildError('LABEL names can not be blank');
      labels[k] = v;
      pairs.push(`${k}=${v}`);
    }
    c.Labels = labels;
    await meta(b, st, `LABEL ${pairs.join(' ')}`, c);
  },

  async arg(b, st, ins) {
    const shown: string[] = [];
    for (const w of ins.node.args) {
      const eq = w.indexOf('=');
      const name = eq < 0 ? w : w.slice(0, eq);
      const dflt = eq < 0 ? st.args.get(name) : b.word(st, w.slice(eq + 1));
      st.args.set(name, b.argValue(name, dflt));
      shown.push(eq < 0 ? name : `${name}=${dflt}`);
    }
    await meta(b, st, `ARG ${shown.join(' ')}`, cloneConfig(st));
  },

  async run(b, st, ins) {
    const cmd = commandOf(st, ins);
    const args = b.runArgs(st);
    const saveCmd = args.length ? [`|${args.length}`, ...args.map(([k, v]) => `${k}=${v}`), ...cmd] : cmd;
    await b.commit(st, {
      createdBy: saveCmd.join(' '),
      runConfig: cloneConfig(st),
      key: { run: saveCmd },
      produce: (w) => b.run(st, cmd, cmd.join(' '), w),
    });
  },

  async cmd(b, st, ins) {
    const c = cloneConfig(st);
    const cmd = commandOf(st, ins);
    c.Cmd = cmd;
    st.cmdSet = true;
    await meta(b, st, `CMD ${goQuote(cmd)}`, c);
  },

  async entrypoint(b, st, ins) {
    const c = cloneConfig(st);
    const ep = commandOf(st, ins);
    c.Entrypoint = ep;
    // an ENTRYPOINT drops the CMD it inherited from the base image (not one set in this stage)
    if (!st.cmdSet) c.Cmd = null;
    await meta(b, st, `ENTRYPOINT ${goQuote(ep)}`, c);
  },

  async shell(b, st, ins) {
    const c = cloneConfig(st);
    c.Shell = [...ins.node.args];
    await meta(b, st, `SHELL [${ins.node.args.join(' ')}]`, c);
  },

  async workdir(b, st, ins) {
    const w = b.word(st, ins.node.args[0]!);
    const c = cloneConfig(st);
    const dir = path.posix.normalize(path.posix.isAbsolute(w) ? w : path.posix.join(st.runConfig.WorkingDir || '/', w));
    c.WorkingDir = dir;
    await b.commit(st, {
      createdBy: [...shellOf(st), `#(nop) WORKDIR ${dir}`].join(' '),
      runConfig: c,
      key: { workdir: dir },
      // moby makes the directory now (a layer if it was missing); an existing one changes nothing
      produce: (w) =>
        b.copyInto(st, w, async (id) => {
          if (dir === '/' || (await b.statIn(id, dir)) !== undefined) return undefined;
          return { plan: { items: [], mkdirs: [dir] }, owner: { uid: 0, gid: 0 }, chmod: undefined, missing: new Set([dir]) };
        }),
    });
  },

  async user(b, st, ins) {
    const c = cloneConfig(st);
    c.User = b.word(st, ins.node.args[0]!);
    await meta(b, st, `USER ${c.User}`, c);
  },

  async expose(b, st, ins) {
    const c = cloneConfig(st);
    const ports = { ...(c.ExposedPorts ?? {}) };
    const words = ins.node.args.flatMap((a) => processWords(a, b.env(st), b.escape));
    for (const w of words) {
      const m = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
      if (!m) throw new BuildError(`invalid containerPort: ${w}`);
      const lo = Number(m[1]);
      const hi = m[2] ? Number(m[2]) : lo;
      if (lo > 65535 || hi > 65535 || hi < lo) throw new BuildError(`invalid range specified for container port: ${w}`);
      for (let p = lo; p <= hi; p++) ports[`${p}/${(m[3] ?? 'tcp').toLowerCase()}`] = {};
    }
    c.ExposedPorts = ports;
    await meta(b, st, `EXPOSE ${words.join(' ')}`, c);
  },

  async volume(b, st, ins) {
    const c = cloneConfig(st);
    const vols = { ...(c.Volumes ?? {}) };
    const list = ins.node.json
      ? ins.node.args.map((a) => b.word(st, a))
      : ins.node.args.flatMap((a) => processWords(a, b.env(st), b.escape));
    for (const v of list) {
      if (v.trim() === '') throw new BuildError('VOLUME specified can not be an empty string');
      vols[v] = {};
    }
    c.Volumes = vols;
    await meta(b, st, `VOLUME [${list.join(' ')}]`, c);
  },

  async stopsignal(b, st, ins) {
    const sig = b.word(st, ins.node.args[0]!);
    try {
      parseSignal(sig);
    } catch {
      throw new BuildError(`Invalid signal: ${sig}`);
    }
    const c = cloneConfig(st);
    c.StopSignal = sig;
    await meta(b, st, `STOPSIGNAL ${sig}`, c);
  },

  async healthcheck(b, st, ins) {
    const c = cloneConfig(st);
    const a = ins.node.args;
    let test: string[];
    if (a[0] === 'NONE') {
      test = ['NONE'];
      c.Healthcheck = { Test: test };
    } else {
      test = ins.node.json ? ['CMD', ...a.slice(1)] : ['CMD-SHELL', a[1]!];
      const retriesText = ins.flags.retries;
      let retries = 0;
      if (retriesText !== undefined) {
        if (!/^-?\d+$/.test(String(retriesText))) throw new BuildError(`invalid value for retries: ${String(retriesText)}`);
        retries = Number(retriesText);
        if (retries < 0) throw new BuildError('--retries cannot be negative');
      }
      c.Healthcheck = {
        Test: test,
        Interval: duration('Interval', ins.flags.interval),
        Timeout: duration('Timeout', ins.flags.timeout),
        StartPeriod: duration('StartPeriod', ins.flags['start-period']),
        StartInterval: duration('StartInterval', ins.flags['start-interval']),
        Retries: retries,
      };
    }
    // moby: fmt.Sprintf("HEALTHCHECK %q", runConfig.Healthcheck), the %q of the whole struct
    await meta(b, st, `HEALTHCHECK ${goQuoteHealthConfig(c.Healthcheck)}`, c);
  },

  async onbuild(b, st, ins) {
    const expr = ins.node.original.replace(/^\s*ONBUILD\s+/i, '');
    const c = cloneConfig(st);
    c.OnBuild = [...(c.OnBuild ?? []), expr];
    await meta(b, st, `ONBUILD ${expr}`, c);
  },

  async maintainer(b, st, ins) {
    const name = ins.node.args[0]!;
    st.author = name;
    await meta(b, st, `MAINTAINER ${name}`, cloneConfig(st), { author: name });
  },

  copy: copyLike,
  add: copyLike,
};

export async function dispatch(b: BuildRun, st: StageState, ins: Instruction): Promise<void> {
  const fn = DISPATCHERS[ins.kind];
  if (!fn) throw new BuildError(`unknown instruction: ${ins.kind.toUpperCase()}`);
  await fn(b, st, ins);
}

/**
 * The classic builder (POST /build without BuildKit): runs a parsed Dockerfile stage by stage,
 * one image per instruction, as moby's builder/dockerfile does:
 *
 * - every step prints `Step N/M : <instruction>` and ends with ` ---> <image ID>`;
 * - a step is looked up in the layer cache first (cache.ts): a hit prints ` ---> Using cache`;
 * - RUN runs in a container of the step's parent image, through the runtime (the build's
 *   --isolation), its output streamed; COPY/ADD/WORKDIR write into a created container (straight
 *   into its root where the isolation offers one, else through `docker cp`'s extract); the
 *   container's changes (the same list as `docker diff`, Isolation.layerTar) become the step's
 *   layer, and the container is removed;
 * - the other instructions only change the image config (an empty layer in the history);
 * - a failure stops the build: its container is removed, the images of the steps before it
 *   stay (they are the cache), nothing is tagged.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract } from 'tar-stream';
import { NotFoundError } from '../errors.js';
import type { ImageConfig } from '../images/manifest.js';
import type { ImageRunConfig, PullProgress } from '../images/types.js';
import type { LayerMeta, Store } from '../images/store.js';
import { parseNormalized } from '../images/reference.js';
import type { ContainerManager } from '../runtime/manager.js';
import { BuildContext } from './context.js';
import { BuildCache, cacheKey } from './cache.js';
import { BuildError, RunStepError } from './errors.js';
import { ImageWrite, parentOf, type HistoryEntry } from './image-writer.js';
import { instruction, parseInstructions, type Instruction, type Stage } from './instructions.js';
import { dispatch } from './dispatchers.js';
import { envMap, processWord } from './lex.js';
import { nodeFromLine, parseDockerfile } from './parser.js';
import { copyTar, type CopyOwner, type CopyPlan } from './copy.js';
import { writePlan } from './root-writer.js';

/** What a COPY/ADD step writes: the plan, the owner, --chmod, the directories to make. */
export interface CopyJob {
  plan: CopyPlan;
  owner: CopyOwner;
  chmod: number | undefined;
  missing: Set<string>;
}

export interface BuildOptions {
  /** the Dockerfile's path in the context */
  dockerfile: string;
  /** full references to tag the result with */
  tags: string[];
  /** --build-arg: a value, or null for "take it from the client's environment" (already resolved by the CLI) */
  buildArgs: Record<string, string | null>;
  target?: string;
  noCache: boolean;
  pull: boolean;
  labels: Record<string, string>;
  /** HostConfig.NetworkMode for every RUN: '' (the daemon's default), none, host, bridge, a network */
  network: string;
  /** HostConfig.Isolation for every RUN (as given: '', 'container', 'vm', ...) */
  isolation: string;
  quiet: boolean;
}

export interface BuildOutput {
  /** a `{"stream": ...}` message */
  stream(text: string): void;
  /** a pull's progress messages (FROM of an image not here) */
  progress(p: PullProgress): void;
}

/** One stage's state while it is built. */
export interface StageState {
  stage: Stage;
  /** the image so far; undefined for FROM scratch before any step */
  imageId: string | undefined;
  parent: { config: ImageConfig; layers: LayerMeta[] } | undefined;
  runConfig: ImageRunConfig;
  /** ARGs declared in this stage, with their values (undefined: declared without one) */
  args: Map<string, string | undefined>;
  /** CMD was set in this stage (ENTRYPOINT then keeps it) */
  cmdSet: boolean;
  author?: string;
}

export interface StepResult {
  /** the history's created_by */
  createdBy: string;
  runConfig: ImageRunConfig;
  /** more inputs that decide a cache hit (source checksums, build args) */
  key?: unknown;
  /** makes and stores the layer on a cache miss (through `w`, while its container exists) */
  produce?: (w: ImageWrite) => Promise<LayerMeta | undefined>;
  author?: string;
}

/** What a build needs from the daemon. */
export interface BuilderDeps {
  manager: ContainerManager;
  store: Store;
  cache: BuildCache;
  /** scratch space (contexts, files of other images) */
  tmpDir: string;
  log: (m: string) => void;
}

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** The predefined ARGs Docker passes without a declaration (proxy settings). */
const BUILTIN_ARGS = new Set([
  'HTTP_PROXY',
  'http_proxy',
  'HTTPS_PROXY',
  'https_proxy',
  'FTP_PROXY',
  'ftp_proxy',
  'NO_PROXY',
  'no_proxy',
  'ALL_PROXY',
  'all_proxy',
]);

export class BuildRun {
  readonly escape: string;
  private stepNo = 0;
  private total = 0;
  /** finished stages, by index and name */
  private readonly done: StageState[] = [];
  private readonly containers = new Set<string>();
  private readonly usedArgs = new Set<string>();
  private emptyImage: string | undefined;

  constructor(
    readonly deps: BuilderDeps,
    readonly ctx: BuildContext,
    readonly opts: BuildOptions,
    readonly out: BuildOutput,
    escape: string,
  ) {
    this.escape = escape;
  }

  // ---- the environment for substitution and RUN ----

  /** runConfig.Env first (ENV wins over ARG), then the stage's ARGs that have values. */
  env(st: StageState): Map<string, string> {
    const m = envMap(st.runConfig.Env ?? []);
    for (const [k, v] of st.args) if (v !== undefined && !m.has(k)) m.set(k, v);
    return m;
  }

  word(st: StageState, w: string): string {
    return processWord(w, this.env(st), this.escape);
  }

  /** The build args in effect for a RUN, sorted (moby's `|N k=v` prefix and RUN environment). */
  runArgs(st: StageState): [string, string][] {
    const env = envMap(st.runConfig.Env ?? []);
    const out: [string, string][] = [];
    for (const [k, v] of st.args) if (v !== undefined && !env.has(k)) out.push([k, v]);
    for (const k of BUILTIN_ARGS) {
      const v = this.opts.buildArgs[k];
      if (typeof v === 'string' && !st.args.has(k)) out.push([k, v]);
    }
    return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** An ARG's value: the --build-arg, else its default; marks the build arg used. */
  argValue(name: string, dflt: string | undefined): string | undefined {
    if (Object.prototype.hasOwnProperty.call(this.opts.buildArgs, name)) {
      this.usedArgs.add(name);
      const v = this.opts.buildArgs[name];
      if (typeof v === 'string') return v;
    }
    return dflt;
  }

  // ---- stages ----

  stageByRef(ref: string): StageState | undefined {
    const lower = ref.toLowerCase();
    const byName = this.done.find((s) => s.stage.name === lower);
    if (byName) return byName;
    if (/^\d+$/.test(ref)) return this.done[Number(ref)];
    return undefined;
  }

  /** An image ID that has the stage's files: scratch gets one empty image (made once, same ID every time). */
  async containerImage(st: StageState): Promise<string> {
    if (st.imageId) return st.imageId;
    if (!this.emptyImage) {
      const w = new ImageWrite(this.deps.store);
      try {
        const img = await w.image({
          parent: undefined,
          layer: undefined,
          runConfig: {},
          history: { created_by: 'scratch (tvm builder)' },
          created: '1970-01-01T00:00:00Z',
        });
        this.emptyImage = img.id;
        w.done();
      } catch (e) {
        await w.abandon(this.deps.log);
        throw e;
      }
    }
    return this.emptyImage;
  }

  /** Resolves (or pulls) an image named in FROM or COPY --from. */
  async image(ref: string): Promise<{ id: string; config: ImageConfig; layers: LayerMeta[] }> {
    const { store } = this.deps;
    let id: string | undefined;
    if (!this.opts.pull)
      id = await store.resolveId(ref).catch((e: unknown) => {
        if (e instanceof NotFoundError) return undefined;
        throw e;
      });
    if (!id) {
      const r = parseNormalized(ref);
      if (!r.tag && !r.digest) ref = `${ref}:latest`;
      const img = await store.pull(ref, { onProgress: (p) => this.out.progress(p) });
      id = img.id;
    }
    const p = await parentOf(store, id);
    return { id, ...p };
  }

  // ---- containers ----

  /**
   * Creates a container of the stage's image with `config` (not started), runs `fn` with its ID,
   * and removes it (its anonymous volumes too) however `fn` ends.
   */
  async withContainer<T>(st: StageState, config: { cmd: string[]; env?: string[] }, fn: (id: string) => Promise<T>): Promise<T> {
    const m = this.deps.manager;
    const rc = st.runConfig;
    const body = {
      Image: await this.containerImage(st),
      Cmd: config.cmd,
      Entrypoint: [''],
      Env: config.env ?? rc.Env ?? [],
      WorkingDir: rc.WorkingDir ?? '',
      User: rc.User ?? '',
      Labels: {},
      HostConfig: { NetworkMode: this.opts.network, Isolation: this.opts.isolation },
    };
    const { Id } = await m.create(body);
    this.containers.add(Id);
    try {
      return await fn(Id);
    } finally {
      await m.remove(Id, { force: true, volumes: true }).then(
        () => this.containers.delete(Id),
        (e: unknown) => this.deps.log(`build: removing intermediate container ${short(Id)}: ${String(e)}`),
      );
    }
  }

  /** The container's changes as a layer tar. */
  async layerOf(id: string): Promise<Readable> {
    const m = this.deps.manager;
    const rec = m.get(id);
    const iso = m.isolationFor(rec.spec.isolation);
    if (!iso.layerTar)
      throw new BuildError(
        `building with --isolation=${rec.spec.isolation} is not supported yet: its containers cannot be committed`,
        'ERR_BUILD_ISOLATION',
      );
    return iso.layerTar(rec.spec);
  }

  /** Runs a RUN command in a container; returns its layer. */
  async run(st: StageState, cmd: string[], shownCmd: string, w: ImageWrite): Promise<LayerMeta | undefined> {
    const env = [...(st.runConfig.Env ?? []), ...this.runArgs(st).map(([k, v]) => `${k}=${v}`)];
    let ran: string | undefined;
    const layer = await this.withContainer(st, { cmd, env }, async (id) => {
      ran = id;
      const m = this.deps.manager;
      this.say(` ---> Running in ${short(id)}\n`);
      const sink = () =>
        new Writable({
          write: (c: Buffer, _e, cb) => {
            if (!this.opts.quiet) this.out.stream(c.toString('utf8'));
            cb();
          },
        });
      const attachment = await m.attach(
        id,
        { stdout: sink(), stderr: sink() },
        { stdin: false, stdout: true, stderr: true, logs: false, stream: true },
      );
      const exited = m.wait(id, 'next-exit');
      await m.start(id);
      const res = await exited;
      await attachment.done;
      if (res.StatusCode !== 0) throw new RunStepError(shownCmd, res.StatusCode);
      // stored while the container exists: its layer is read from the container's upper directory
      return w.layer(await this.layerOf(id), `layer of RUN in ${short(id)}`);
    });
    if (ran) this.say(`Removing intermediate container ${short(ran)}\n`);
    return layer;
  }

  /**
   * COPY/ADD: `prepare` (given the created container, to look into it) says what goes where;
   * written straight into the container's filesystem where the isolation allows it, else
   * unpacked through `docker cp`; stores and returns the layer (undefined: nothing to copy).
   */
  async copyInto(st: StageState, w: ImageWrite, prepare: (id: string) => Promise<CopyJob | undefined>): Promise<LayerMeta | undefined> {
    return this.withContainer(st, { cmd: ['/bin/sh'] }, async (id) => {
      const job = await prepare(id);
      if (!job) return undefined;
      const m = this.deps.manager;
      const rec = m.get(id);
      const iso = m.isolationFor(rec.spec.isolation);
      if (iso.withRoot && !job.plan.items.some((i) => i.hostIsTarForAdd)) {
        await iso.withRoot(rec.spec, (root, toHost) => writePlan(root, job.plan, job.owner, job.chmod, job.missing, toHost));
      } else {
        await m.extract(id, '/', copyTar(job.plan, job.owner, job.chmod, job.missing));
      }
      return w.layer(await this.layerOf(id), `layer of step ${this.stepNo}`);
    });
  }

  /** `docker cp` out of a container path, or undefined when nothing is there. */
  private async archiveOrNone(id: string, p: string): Promise<Readable | undefined> {
    try {
      return await this.deps.manager.archive(id, p);
    } catch (e) {
      if (e instanceof NotFoundError) return undefined;
      throw e;
    }
  }

  /** The first header of `docker cp` out of a container path, or undefined when nothing is there. */
  async statIn(id: string, p: string): Promise<'directory' | 'other' | undefined> {
    const tar = await this.archiveOrNone(id, p);
    if (!tar) return undefined;
    let kind: 'directory' | 'other' | undefined;
    const ex = tarExtract();
    ex.on('entry', (h, stream, next) => {
      kind ??= h.type === 'directory' ? 'directory' : 'other';
      stream.resume();
      next();
    });
    await pipeline(tar, ex);
    return kind;
  }

  /** A small file of a container (its /etc/passwd), or undefined. */
  async readIn(id: string, p: string): Promise<Buffer | undefined> {
    const tar = await this.archiveOrNone(id, p);
    if (!tar) return undefined;
    let data: Buffer | undefined;
    const ex = tarExtract();
    ex.on('entry', (h, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => void chunks.push(c as Buffer));
      stream.on('end', () => {
        if (data === undefined && h.type === 'file') data = Buffer.concat(chunks);
        next();
      });
    });
    await pipeline(tar, ex);
    return data;
  }

  /** Copies paths out of an image into a new scratch directory (COPY --from); returns it. */
  async filesOf(imageId: string, paths: string[]): Promise<{ dir: string; found: Map<string, string> }> {
    const dir = path.join(this.deps.tmpDir, `from-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { recursive: true });
    const found = new Map<string, string>();
    const st = { imageId, runConfig: {} } as unknown as StageState;
    await this.withContainer(st, { cmd: ['/bin/sh'] }, async (id) => {
      let n = 0;
      for (const p of paths) {
        const into = path.join(dir, String(n++));
        let tar: Readable;
        try {
          tar = await this.deps.manager.archive(id, p);
        } catch (e) {
          if (e instanceof NotFoundError) continue;
          throw e;
        }
        const sub = await BuildContext.open(tar, into, { dockerignore: false });
        const base = path.posix.basename(path.posix.resolve('/', p)) || '.';
        found.set(p, path.join(sub.root, base));
      }
    });
    return { dir, found };
  }

  // ---- steps ----

  private step(text: string): void {
    this.stepNo++;
    if (!this.opts.quiet) this.out.stream(`Step ${this.stepNo}/${this.total} : ${text}\n`);
  }

  say(text: string): void {
    if (!this.opts.quiet) this.out.stream(text);
  }

  /** Runs one step's result through the cache and the image writer; moves the stage on. */
  async commit(st: StageState, r: StepResult): Promise<void> {
    const { store, cache } = this.deps;
    const parentId = st.imageId ?? 'scratch';
    const key = cacheKey(parentId, { createdBy: r.createdBy, runConfig: r.runConfig, key: r.key ?? null });
    if (!this.opts.noCache) {
      const hit = await cache.get(key);
      if (hit) {
        try {
          const p = await parentOf(store, hit);
          this.say(' ---> Using cache\n');
          this.moveTo(st, hit, p);
          this.say(` ---> ${short(hit)}\n`);
          return;
        } catch (e) {
          if (!(e instanceof NotFoundError)) throw e;
          await cache.forget(key); // its image was removed since
        }
      }
    }
    const w = new ImageWrite(store);
    try {
      const layer = r.produce ? await r.produce(w) : undefined;
      const history: HistoryEntry = { created_by: r.createdBy };
      const author = r.author ?? st.author;
      const parentId = st.imageId ?? this.emptyImage;
      const img = await w.image({
        parent: st.parent,
        ...(parentId && { parentId }),
        layer,
        runConfig: r.runConfig,
        history,
        ...(author && { author }),
      });
      w.done();
      await cache.set(key, img.id);
      this.moveTo(st, img.id, await parentOf(store, img.id));
      this.say(` ---> ${short(img.id)}\n`);
    } catch (e) {
      await w.abandon(this.deps.log);
      throw e;
    }
  }

  private moveTo(st: StageState, id: string, p: { config: ImageConfig; layers: LayerMeta[] }): void {
    st.imageId = id;
    st.parent = p;
    st.runConfig = structuredClone(p.config.config ?? {});
  }

  // ---- the whole build ----

  async build(text: string): Promise<{ imageId: string }> {
    const df = parseInstructions(text);
    for (const w of df.warnings) this.say(`${w}\n`);
    let stages = df.stages;
    if (this.opts.target) {
      const ix = stages.findIndex((s) => s.name === this.opts.target!.toLowerCase());
      if (ix < 0) throw new BuildError(`failed to reach build target ${this.opts.target} in Dockerfile`);
      stages = stages.slice(0, ix + 1);
    }
    // --label: one more LABEL at the end of the last stage, as moby adds it
    const labelKeys = Object.keys(this.opts.labels).sort();
    if (labelKeys.length) {
      const line = `LABEL ${labelKeys.map((k) => `${JSON.stringify(k)}='${this.opts.labels[k]}'`).join(' ')}`;
      const last = stages[stages.length - 1]!;
      const node = nodeFromLine(line, this.escape, last.from.endLine, last.from.endLine);
      node.args = labelKeys.flatMap((k) => [k, this.opts.labels[k]!]);
      last.instructions.push({ kind: 'label', node, flags: {}, literal: true } as Instruction);
    }
    this.total = df.metaArgs.length + stages.length + stages.reduce((n, s) => n + s.instructions.length, 0);

    // ARGs before the first FROM: only FROM lines see them (and stages that redeclare them)
    const meta = new Map<string, string | undefined>();
    for (const a of df.metaArgs) {
      this.step(a.node.original);
      for (const w of a.node.args) {
        const eq = w.indexOf('=');
        const name = eq < 0 ? w : w.slice(0, eq);
        const dflt =
          eq < 0
            ? undefined
            : processWord(w.slice(eq + 1), envMap([...meta].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`)), this.escape);
        meta.set(name, this.argValue(name, dflt));
      }
    }
    const metaEnv = () => envMap([...meta].filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`));

    let last: StageState | undefined;
    for (const stage of stages) {
      this.step(stage.from.original);
      const base = processWord(stage.base, metaEnv(), this.escape);
      if (stage.platform !== undefined) {
        const pf = processWord(stage.platform, metaEnv(), this.escape);
        if (!/^linux(\/amd64)?$/.test(pf)) throw new BuildError(`platform ${pf} is not supported: tvm builds linux/amd64 images only`);
      }
      const st: StageState = { stage, imageId: undefined, parent: undefined, runConfig: {}, args: new Map(), cmdSet: false };
      if (base === '') throw new BuildError(`base name (${stage.base}) should not be blank`);
      if (base.toLowerCase() === 'scratch') {
        this.say(' ---> \n');
      } else {
        const prior = this.stageByRef(base);
        if (prior && prior.stage.name === base.toLowerCase()) {
          st.imageId = prior.imageId;
          st.parent = prior.parent;
          st.runConfig = structuredClone(prior.runConfig);
        } else {
          const img = await this.image(base);
          st.imageId = img.id;
          st.parent = { config: img.config, layers: img.layers };
          st.runConfig = structuredClone(img.config.config ?? {});
        }
        this.say(` ---> ${short(st.imageId ?? '')}\n`);
        // the base image's ONBUILD triggers run now, then are cleared
        const triggers = st.runConfig.OnBuild ?? [];
        if (triggers.length) {
          this.say(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
          st.runConfig.OnBuild = null;
          for (const t of triggers) {
            const node = nodeFromLine(t, this.escape, stage.from.startLine, stage.from.endLine);
            await dispatch(this, st, instruction(node));
          }
        }
      }
      for (const ins of stage.instructions) {
        this.step(ins.node.original);
        // an ARG of the stage with no default takes the value of the same meta ARG
        if (ins.kind === 'arg') {
          for (const w of ins.node.args) {
            const name = w.split('=')[0]!;
            if (!w.includes('=') && meta.has(name)) st.args.set(name, meta.get(name));
          }
        }
        await dispatch(this, st, ins);
      }
      this.done.push(st);
      last = st;
    }
    const unused = Object.keys(this.opts.buildArgs)
      .filter((k) => !this.usedArgs.has(k) && !BUILTIN_ARGS.has(k))
      .sort();
    if (unused.length) this.say(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n`);
    const finalId = last?.imageId ?? (await this.containerImage(last!));
    return { imageId: finalId };
  }

  /** Removes containers a failed build left (each one's own remove already ran; this is the safety net). */
  async cleanup(): Promise<void> {
    for (const id of this.containers) {
      await this.deps.manager.remove(id, { force: true, volumes: true }).catch((e) => this.deps.log(`build cleanup: ${String(e)}`));
    }
  }
}

/** Builds a context; tags the image; returns its ID. */
export async function build(deps: BuilderDeps, ctx: BuildContext, opts: BuildOptions, out: BuildOutput): Promise<string> {
  const text = await ctx.dockerfile(opts.dockerfile);
  if (text.trim() === '') throw new BuildError(`the Dockerfile (${opts.dockerfile || 'Dockerfile'}) cannot be empty`);
  const escape = parseDockerfile(text).directives.escape;
  const run = new BuildRun(deps, ctx, opts, out, escape);
  try {
    const { imageId } = await run.build(text);
    for (const t of opts.tags) await deps.store.tag(imageId, t);
    return imageId;
  } finally {
    await run.cleanup();
    await rm(deps.tmpDir, { recursive: true, force: true }).catch((e) => deps.log(`build: removing ${deps.tmpDir}: ${String(e)}`));
  }
}

/**
 * `DOCKER_BUILDKIT=0 docker build` (the classic builder protocol) through the real docker CLI
 * against a real tvm daemon (--isolation=container): steps and their output, the layer cache
 * (also after a daemon restart), multi-stage builds, COPY/ADD rules, .dockerignore, failures
 * that leave nothing tagged and no container behind.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, writeFile, symlink, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startDaemonWithBusybox, type TestDaemon, type DockerResult } from '../../fixtures/daemon.js';
import { packTar } from '../../fixtures/rootfs.js';

describe('docker build, classic builder (--isolation=container)', () => {
  let d: TestDaemon;
  let tmp: string;
  let n = 0;
  const docker = (args: string[], input?: string) =>
    d.docker(args, { env: { DOCKER_BUILDKIT: '0' }, ...(input !== undefined && { input }) });
  /** a fresh context dir with these files */
  const context = async (files: Record<string, string>): Promise<string> => {
    const dir = path.join(tmp, `ctx${n++}`);
    for (const [name, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await writeFile(path.join(dir, name), content);
    }
    return dir;
  };
  const build = (dir: string, ...args: string[]): Promise<DockerResult> => docker(['build', ...args, dir]);
  const runIn = async (image: string, cmd: string) => (await docker(['run', '--rm', image, 'sh', '-c', cmd])).stdout;

  beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error('these tests need root (overlay mounts, namespaces)');
    d = await startDaemonWithBusybox();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'build-test-'));
  });
  afterAll(async () => {
    await d?.destroy();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('builds a Dockerfile: steps, RUN output, config, history, cache', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox',
        'ARG GREETING=hello',
        'ENV APP=/app \\',
        '    MODE="prod mode"',
        'WORKDIR $APP',
        'COPY hello.txt ./',
        'RUN echo "$GREETING from RUN" && cat hello.txt > copied.txt',
        'LABEL org.test=yes',
        'EXPOSE 8080/tcp',
        'CMD ["cat", "copied.txt"]',
      ].join('\n'),
      'hello.txt': 'hi there\n',
    });
    const r = await build(dir, '-t', 'build-test:one');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('Step 1/9 : FROM busybox');
    expect(r.stdout).toContain('Step 6/9 : RUN echo "$GREETING from RUN" && cat hello.txt > copied.txt');
    expect(r.stdout).toContain('hello from RUN');
    expect(r.stdout).toMatch(
      /Successfully built [0-9a-f]{12}\nSuccessfully tagged build-test:one:latest|Successfully tagged build-test:one/,
    );
    expect(await runIn('build-test:one', 'pwd; cat copied.txt; echo "$MODE"')).toBe('/app\nhi there\nprod mode');
    expect((await docker(['run', '--rm', 'build-test:one'])).stdout).toBe('hi there');
    const cfg = await docker([
      'inspect',
      '-f',
      '{{json .Config.Labels}} {{json .Config.ExposedPorts}} {{.Config.WorkingDir}}',
      'build-test:one',
    ]);
    expect(cfg.stdout).toBe('{"org.test":"yes"} {"8080/tcp":{}} /app');
    const hist = await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'build-test:one']);
    const rows = hist.stdout.split('\n');
    // each step's image is here: its row has its ID (the base image's too)
    const histIds = (await docker(['history', '-q', 'build-test:one'])).stdout.split('\n');
    expect([histIds.length, histIds.includes('<missing>')]).toEqual([9, false]);
    expect(rows[0]).toBe('/bin/sh -c #(nop)  CMD ["cat" "copied.txt"]');
    expect(rows).toContain('|1 GREETING=hello /bin/sh -c echo "$GREETING from RUN" && cat hello.txt > copied.txt');
    expect(
      rows.some((x) => /^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \.\/ ?$/.test(x)),
      rows.join('\n'),
    ).toBe(true);
    // no intermediate container is left
    expect((await docker(['ps', '-aq'])).stdout).toBe('');
    // the step images are intermediate: listed with -a only, never dangling
    expect((await docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.split('\n').sort()).toEqual([
      'build-test:one',
      'busybox:latest',
    ]);
    expect((await docker(['images', '-q', '--filter', 'dangling=true'])).stdout).toBe('');
    expect((await docker(['images', '-aq'])).stdout.split('\n').length).toBeGreaterThan(8);
    expect((await docker(['inspect', '-f', '{{.Parent}}', 'build-test:one'])).stdout).toMatch(/^sha256:[0-9a-f]{64}$/);
    // and docker image prune keeps them (they are the cache)
    const before = (await docker(['images', '-aq'])).stdout;
    expect((await docker(['image', 'prune', '-f'])).exitCode).toBe(0);
    expect((await docker(['images', '-aq'])).stdout).toBe(before);

    // the same build again: every step from the cache, same image
    const again = await build(dir, '-t', 'build-test:one');
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stdout.match(/Using cache/g)?.length).toBe(8);
    expect(again.stdout).not.toContain('hello from RUN');
    const ids = async () => (await docker(['inspect', '-f', '{{.Id}}', 'build-test:one'])).stdout;
    const first = await ids();
    // a changed COPY source: the steps from the COPY on run again
    await writeFile(path.join(dir, 'hello.txt'), 'changed\n');
    const changed = await build(dir, '-t', 'build-test:one');
    expect(changed.stdout.match(/Using cache/g)?.length).toBe(3);
    expect(changed.stdout).toContain('hello from RUN');
    expect(await ids()).not.toBe(first);
    // --no-cache runs everything
    // removing a built image removes its step images too (none is used by anything else)
    const many = async () => (await docker(['images', '-aq'])).stdout.split('\n').filter(Boolean).length;
    const beforeRmi = await many();
    const rmi = await docker(['rmi', 'build-test:one']);
    expect(rmi.exitCode, rmi.stderr).toBe(0);
    expect(rmi.stdout.match(/Deleted: sha256/g)?.length).toBeGreaterThan(3);
    expect(await many()).toBeLessThan(beforeRmi - 3);
    expect((await docker(['run', '--rm', 'busybox', 'true'])).exitCode).toBe(0);
    const nocache = await build(dir, '--no-cache', '-q');
    expect(nocache.exitCode).toBe(0);
    expect(nocache.stdout).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('multi-stage: COPY --from a stage, scratch, --target, build args in FROM', async () => {
    const dir = await context({
      Dockerfile: [
        'ARG BASE=busybox',
        'FROM ${BASE} AS build',
        'RUN mkdir -p /out/sub && echo built > /out/sub/result && echo x > /out/top',
        'FROM scratch AS final',
        'COPY --from=build /out /',
        'COPY --from=0 /bin/busybox /bin/sh',
        'CMD ["/bin/sh", "-c", "cat /sub/result /top"]',
        'FROM final AS extra',
        'ENV LATE=1',
      ].join('\n'),
    });
    const r = await build(dir, '--target', 'final', '-t', 'build-test:multi');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain('Step 7/7 : CMD');
    expect((await docker(['run', '--rm', 'build-test:multi'])).stdout).toBe('built\nx');
    const layers = await docker(['inspect', '-f', '{{len .RootFS.Layers}} {{.Config.Env}}', 'build-test:multi']);
    expect(layers.stdout).toBe('2 []');
    const missing = await build(dir, '--target', 'nope');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toContain('failed to reach build target nope in Dockerfile');
  });

  it('rmi of an image others were built on: refused by ID (even forced), only untagged by name, gone with its last child', async () => {
    const parentDir = await context({ Dockerfile: 'FROM busybox\nRUN echo p > /p\n' });
    expect((await build(parentDir, '-t', 'build-test:parent')).exitCode).toBe(0);
    const childDir = await context({ Dockerfile: 'FROM build-test:parent\nRUN echo c > /c\n' });
    expect((await build(childDir, '-t', 'build-test:child-of')).exitCode).toBe(0);
    const parentId = (await docker(['inspect', '-f', '{{.Id}}', 'build-test:parent'])).stdout;
    const short = parentId.slice(7, 19);
    for (const args of [
      ['rmi', parentId],
      ['rmi', '-f', short],
    ]) {
      const r = await docker(args);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`conflict: unable to delete ${short} (cannot be forced) - image has dependent child images`);
    }
    // the raw answer is dockerd's 409
    const raw = await execa(
      'curl',
      [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--unix-socket',
        d.socket,
        '-X',
        'DELETE',
        `http://localhost/v1.41/images/${parentId}`,
      ],
      { reject: false },
    );
    expect(raw.stdout).toBe('409');
    // by name: untagged only, the image stays for its child
    const untag = await docker(['rmi', 'build-test:parent']);
    expect([untag.exitCode, untag.stdout]).toEqual([0, 'Untagged: build-test:parent']);
    expect((await docker(['inspect', '-f', '{{.Id}}', parentId])).stdout).toBe(parentId);
    expect(await runIn('build-test:child-of', 'cat /p /c')).toBe('p\nc');
    // the last child gone, so is the untagged parent
    const rmChild = await docker(['rmi', 'build-test:child-of']);
    expect(rmChild.exitCode, rmChild.stderr).toBe(0);
    expect(rmChild.stdout).toContain(`Deleted: ${parentId}`);
    expect((await docker(['inspect', parentId])).exitCode).toBe(1);
  });

  it("COPY --from with globs: matched in the stage's files, a symlinked directory not entered, no match is Docker's error", async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox AS build',
        'RUN mkdir -p /out/a /out/b /real && echo 1 > /out/a/x.txt && echo 2 > /out/b/y.txt && echo 3 > /out/top.txt && echo no > /out/a/x.md && echo r > /real/r.txt && ln -s /real /out/lnk',
        'FROM busybox',
        'COPY --from=build /out/*/*.txt /out/top.* /got/',
        'COPY --from=build out/lnk/*.txt /none-from-link/',
        'COPY --from=build /out/[a]/ /dir-contents/',
      ].join('\n'),
    });
    const r = await build(dir, '-t', 'build-test:fromglob');
    // the symlinked directory is not walked: nothing matches, as in moby's walk
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('COPY failed: no source files were specified');
    await writeFile(
      path.join(dir, 'Dockerfile'),
      (await readFile(path.join(dir, 'Dockerfile'), 'utf8')).replace(/^COPY --from=build out\/lnk.*\n/m, ''),
    );
    const ok = await build(dir, '-t', 'build-test:fromglob');
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(await runIn('build-test:fromglob', 'cd /got && ls && cat x.txt y.txt top.txt && ls /dir-contents')).toBe(
      'top.txt\nx.txt\ny.txt\n1\n2\n3\nx.md\nx.txt',
    );
  });

  it('COPY and ADD rules: directories, globs, --chown, a local tar, symlinks, .dockerignore', async () => {
    const dir = await context({
      Dockerfile: [
        'FROM busybox',
        'COPY dir /dst/',
        'COPY *.txt /globbed/',
        'COPY --chown=app:app one.txt /owned',
        'COPY --chown=7:8 --chmod=600 one.txt /numeric',
        'ADD archive.tar /unpacked/',
        'COPY link /via-link',
        'COPY . /all/',
      ].join('\n'),
      'dir/a': 'A',
      'dir/sub/b': 'B',
      'one.txt': '1',
      'two.txt': '2',
      'secret.key': 'do not send',
      'logs/x.log': 'log',
      'logs/keep.log': 'keep',
      '.dockerignore': '*.key\nlogs\n!logs/keep.log\n',
    });
    await symlink('dir/a', path.join(dir, 'link'));
    await execa('tar', ['-cf', path.join(dir, 'archive.tar'), '-C', path.join(dir, 'dir'), '.']);
    const r = await build(dir, '-t', 'build-test:copy');
    expect(r.exitCode, r.stderr).toBe(0);
    const out = await runIn(
      'build-test:copy',
      [
        'cat /dst/a /dst/sub/b; echo',
        'ls /globbed | tr "\\n" " "; echo',
        'stat -c "%u:%g %a" /owned /numeric',
        'cat /unpacked/a /unpacked/sub/b; echo',
        'cat /via-link; echo',
        'ls -a /all /all/logs | tr "\\n" " "',
      ].join('; '),
    );
    expect(out.split('\n')).toEqual([
      'AB',
      'one.txt two.txt ',
      '1000:1000 644',
      '7:8 600',
      'AB',
      'A',
      '/all: . .. .dockerignore Dockerfile archive.tar dir link logs one.txt two.txt  /all/logs: . .. keep.log ',
    ]);
  });

  it("a failing RUN: Docker's message and exit code, nothing tagged, no container left", async () => {
    const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo before\nRUN exit 3\n' });
    const r = await build(dir, '-t', 'build-test:fails');
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toContain("The command '/bin/sh -c exit 3' returned a non-zero code: 3");
    expect((await docker(['inspect', 'build-test:fails'])).exitCode).toBe(1);
    expect((await docker(['ps', '-aq'])).stdout).toBe('');
  });

  it("bad input: Docker's errors, nothing tagged, no container left", async () => {
    const cases: [Record<string, string>, string[], RegExp][] = [
      [{ Dockerfile: 'FROM busybox\nFOO bar\n' }, [], /dockerfile parse error on line 2: unknown instruction: FOO/],
      [{ Dockerfile: 'FROM busybox\nCOPY --bogus=1 a /b\n' }, [], /unknown flag: bogus/],
      // an unknown --from is an image to pull: a loopback registry that is not there (never Docker Hub)
      [{ Dockerfile: 'FROM busybox\nCOPY --from=127.0.0.1:1/nostage /x /y\n' }, [], /127\.0\.0\.1:1/],
      [{ Dockerfile: 'FROM busybox\nCOPY ../outside /x\n' }, [], /Forbidden path outside the build context: \.\.\/outside/],
      [
        { Dockerfile: 'FROM busybox\nCOPY missing.txt /x\n' },
        [],
        /file not found in build context or excluded by \.dockerignore: stat missing\.txt: file does not exist/,
      ],
      [{ Dockerfile: 'FROM busybox\nADD http://example.invalid/x /x\n' }, [], /remote URL .* not supported/],
      [{ Dockerfile: 'FROM busybox\nRUN <<EOF\necho\nEOF\n' }, [], /heredocs .* need BuildKit/],
      [{ Dockerfile: 'FROM busybox\nRUN true\n' }, ['--platform', 'linux/arm64'], /platform linux\/arm64 is not supported/],
      [{ Dockerfile: 'FROM busybox\nRUN true\n' }, ['--isolation', 'bogus'], /invalid isolation "bogus"/],
      [{ Dockerfile: 'FROM busybox\nRUN true\n' }, ['--memory', '64m'], /--memory is not supported by tvm for builds/],
      [{ Dockerfile: 'FROM busybox\nRUN true\n' }, ['--network', 'container:x'], /network mode "container:x" is not supported for builds/],
    ];
    for (const [files, args, re] of cases) {
      const dir = await context(files);
      const r = await build(dir, ...args, '-t', 'build-test:bad');
      expect(r.exitCode, `${files.Dockerfile}: ${r.stdout}`).not.toBe(0);
      expect(r.stderr, files.Dockerfile).toMatch(re);
    }
    // a context tar whose entry climbs out of the context: refused before anything is written there
    const evil = await packTar([
      { name: 'Dockerfile', content: 'FROM busybox\nCOPY . /\n' },
      { name: '../build-test-evil', content: 'x' },
    ]);
    const raw = await execa(
      'curl',
      [
        '-s',
        '-w',
        '\n%{http_code}',
        '--unix-socket',
        d.socket,
        '-X',
        'POST',
        '-H',
        'Content-Type: application/x-tar',
        '--data-binary',
        '@-',
        'http://d/v1.50/build?t=build-test:bad',
      ],
      { input: evil, reject: false },
    );
    expect(String(raw.stdout)).toMatch(
      /invalid build context: tar entry .{1,3}\.\.\/build-test-evil.{1,3} is outside of the context[\s\S]*\n400$/,
    );
    const esc = await context({ Dockerfile: 'FROM busybox\nCOPY escape /x\n' });
    await symlink('../../../../etc/passwd', path.join(esc, 'escape'));
    const e = await build(esc, '-t', 'build-test:bad');
    expect(e.stderr).toMatch(/Forbidden path outside the build context: escape/);
    // no scratch directory of a failed build stays behind
    expect(await readdir(path.join(d.dataRoot, 'build', 'tmp')).catch(() => [])).toEqual([]);
    expect((await docker(['inspect', 'build-test:bad'])).exitCode).toBe(1);
    expect((await docker(['ps', '-aq'])).stdout).toBe('');
  });

  it('-f outside the context, stdin Dockerfile, --build-arg, --label, --iidfile, --isolation container', async () => {
    const dir = await context({ 'data.txt': 'ctx' });
    const df = path.join(tmp, 'Other.Dockerfile');
    await writeFile(df, 'FROM busybox\nARG WHO\nCOPY data.txt /\nRUN echo "who=$WHO" > /who\n');
    const iid = path.join(tmp, 'iid');
    const r = await docker([
      'build',
      '-f',
      df,
      '--build-arg',
      'WHO=me',
      '--build-arg',
      'UNUSED=1',
      '--label',
      'a.b=c d',
      '--iidfile',
      iid,
      '--isolation',
      'container',
      '-t',
      'build-test:f',
      dir,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toContain('[Warning] One or more build-args [UNUSED] were not consumed');
    expect(await runIn('build-test:f', 'cat /data.txt; echo; cat /who')).toBe('ctx\nwho=me');
    expect((await docker(['inspect', '-f', '{{index .Config.Labels "a.b"}}', 'build-test:f'])).stdout).toBe('c d');
    expect((await readFile(iid, 'utf8')).trim()).toBe((await docker(['inspect', '-f', '{{.Id}}', 'build-test:f'])).stdout);
    // ARGs naming each other are no cycle: each default expands with what is declared so far
    const args = await docker(
      ['build', '-t', 'build-test:args', '-'],
      'FROM busybox\nARG A=${B}-a\nARG B=${A}-b\nRUN echo "A=$A B=$B" > /ab\n',
    );
    expect(args.exitCode, args.stderr).toBe(0);
    expect(await runIn('build-test:args', 'cat /ab')).toBe('A=-a B=-a-b');
    const given = await docker(
      ['build', '--build-arg', 'A=x', '-t', 'build-test:args2', '-'],
      'FROM busybox\nARG A=${B}-a\nARG B=${A}-b\nRUN echo "A=$A B=$B" > /ab\n',
    );
    expect(given.exitCode, given.stderr).toBe(0);
    expect(await runIn('build-test:args2', 'cat /ab')).toBe('A=x B=x-b');
    const stdin = await docker(['build', '-t', 'build-test:stdin', '-'], 'FROM busybox\nRUN echo from-stdin > /s\n');
    expect(stdin.exitCode, stdin.stderr).toBe(0);
    expect(await runIn('build-test:stdin', 'cat /s')).toBe('from-stdin');
  });

  it('the cache survives a daemon restart; docker builder prune clears it', async () => {
    const dir = await context({ Dockerfile: 'FROM busybox\nRUN echo cached-run > /c\n' });
    expect((await build(dir, '-t', 'build-test:cache')).exitCode).toBe(0);
    await d.stop();
    await d.start();
    const again = await build(dir, '-t', 'build-test:cache');
    expect(again.stdout).toContain('Using cache');
    const prune = await docker(['builder', 'prune', '-f']);
    expect(prune.exitCode, prune.stderr).toBe(0);
    const after = await build(dir, '-t', 'build-test:cache');
    expect(after.stdout).not.toContain('Using cache');
    expect(after.stdout).toContain('Running in');
  });

  it('config instructions: SHELL, HEALTHCHECK, ONBUILD (run by the next build), STOPSIGNAL, VOLUME, ENTRYPOINT, substitution', async () => {
    const base = await context({
      Dockerfile: [
        'FROM busybox',
        'ARG FLAVOR',
        'ENV SUFFIX=${FLAVOR:+-$FLAVOR} DEFAULTED=${UNSET:-fallback}',
        'SHELL ["/bin/sh", "-ec"]',
        'RUN echo "shell=$0" > /shell',
        'HEALTHCHECK --interval=5s --retries=2 CMD ["true"]',
        'ONBUILD RUN echo triggered > /onbuild',
        'STOPSIGNAL SIGINT',
        'VOLUME /data',
        'RUN echo lost > /data/x',
        'ENTRYPOINT ["sh", "-c"]',
      ].join('\n'),
    });
    const r = await build(base, '--build-arg', 'FLAVOR=mint', '-t', 'build-test:config');
    expect(r.exitCode, r.stderr).toBe(0);
    const fmt =
      '{{json .Config.Healthcheck}}|{{json .Config.OnBuild}}|{{.Config.StopSignal}}|{{json .Config.Volumes}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Shell}}';
    expect((await docker(['inspect', '-f', fmt, 'build-test:config'])).stdout).toBe(
      '{"Test":["CMD","true"],"Interval":5000000000,"Retries":2}|["RUN echo triggered > /onbuild"]|SIGINT|{"/data":{}}|["sh","-c"]|null|["/bin/sh","-ec"]',
    );
    expect((await docker(['run', '--rm', 'build-test:config', 'echo $SUFFIX $DEFAULTED; cat /shell; ls /data'])).stdout).toBe(
      '-mint fallback\nshell=/bin/sh',
    );
    const child = await context({ Dockerfile: 'FROM build-test:config\nRUN true\n' });
    const c = await build(child, '-t', 'build-test:child');
    expect(c.exitCode, c.stderr).toBe(0);
    expect(c.stdout).toContain('# Executing 1 build trigger');
    expect((await docker(['run', '--rm', 'build-test:child', 'cat /onbuild'])).stdout).toBe('triggered');
    expect((await docker(['inspect', '-f', '{{json .Config.OnBuild}}', 'build-test:child'])).stdout).toBe('null');
    // the history line as dockerd 20.10's classic builder writes it: the %q of the whole HealthConfig
    const hist = (await docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'build-test:config'])).stdout.split('\n');
    expect(hist).toContain('/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD" "true"] "5s" "0s" "0s" \'\\x02\'}');
  });
});

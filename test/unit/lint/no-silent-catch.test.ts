/**
 * The local lint rule behind issue 18's "silent `.catch(() => {})` fails lint unless it carries
 * a comment saying why dropping the error is safe" (eslint-rules/no-silent-catch.js).
 */
import { RuleTester } from 'eslint';
import { describe, it } from 'vitest';
import rule from '../../../eslint-rules/no-silent-catch.js';

RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

const tester = new RuleTester({ languageOptions: { ecmaVersion: 2022, sourceType: 'module' } });
const silent = [{ messageId: 'silent' }];

tester.run('no-silent-catch', rule, {
  valid: [
    // a reason on the line above, inside the handler, or trailing the handler's line
    'async function f(p) {\n  // gone already: nothing to undo\n  await p.catch(() => {});\n}',
    'p.catch(() => {\n  // the caller reports it\n});',
    'p.catch(() => undefined); // the caller reports it',
    // the reason above an `if` or a `for` covers the statement on the same line
    'async function f(p, x) {\n  // only a frozen one needs it\n  if (x) await p.catch(() => {});\n}',
    'async function f(p, x) {\n  // only a frozen one needs it\n  if (x)\n    await waitFor(\n      p.catch(() => undefined),\n      10,\n    );\n}',
    'async function f(ps) {\n  // best effort\n  for (const p of ps) { await p.catch(() => {}); }\n}',
    // a run of such statements, one a line, shares the comment above its first
    'async function f(a, b) {\n  // teardown is best effort\n  await a.catch(() => {});\n  await b.catch(() => {});\n}',
    // handlers that do something with the failure are not silent
    'p.catch((e) => log(e));',
    'p.catch((e) => e);',
    'p.then(ok, (e) => { throw wrap(e); });',
    'p.then(() => {});',
    'p.catch(async () => {});',
  ],
  invalid: [
    { code: 'p.catch(() => {});', errors: silent },
    { code: 'p.catch(function () {});', errors: silent },
    { code: 'p.catch((_e) => undefined);', errors: silent },
    { code: "const s = await readFile(f).catch(() => '');", errors: silent },
    { code: 'const xs = await readdir(d).catch(() => []);', errors: silent },
    { code: 'p.then(() => 1, () => false);', errors: silent },
    // a trailing comment of the line before is about that line, not this one
    { code: 'a(); // done\np.catch(() => {});', errors: silent },
    // the comment above a block's `if` is about the `if`, not about what its block does
    { code: '// a reason\nif (x) {\n  a();\n  p.catch(() => {});\n}', errors: silent },
    // a blank line ends a run
    { code: '// best effort\nawait a.catch(() => {});\n\nawait b.catch(() => {});', errors: silent },
  ],
});

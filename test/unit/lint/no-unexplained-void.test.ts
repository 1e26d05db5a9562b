/**
 * The local lint rule that asks a voided promise to say why it is not awaited
 * (eslint-rules/no-unexplained-void.js). It needs type information: the snippets are
 * type-checked as a file of their own by typescript-eslint's project service.
 */
import path from 'node:path';
import { RuleTester } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, it } from 'vitest';
import rule from '../../../eslint-rules/no-unexplained-void.js';

RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

const root = path.resolve(import.meta.dirname, '../../..');
const tester = new RuleTester({
  languageOptions: {
    parser: tseslint.parser,
    parserOptions: { projectService: { allowDefaultProject: ['lint-snippet.ts'] }, tsconfigRootDir: root },
  },
});
const filename = path.join(root, 'lint-snippet.ts');
const unexplained = [{ messageId: 'unexplained' }];
const decl = 'declare const p: Promise<void>;\ndeclare const n: number;\n';

tester.run('no-unexplained-void', rule, {
  valid: [
    { filename, code: `${decl}// it only records the outcome\nvoid p.then(() => 1);` },
    { filename, code: `${decl}void p.then(() => 1); // it only records the outcome` },
    // not a promise: nothing to say
    { filename, code: `${decl}void n;` },
  ],
  invalid: [
    { filename, code: `${decl}void p;`, errors: unexplained },
    { filename, code: `${decl}const f = () => void p.then(() => 1);`, errors: unexplained },
  ],
});

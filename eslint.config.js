// ESLint (flat config) for tvm: typescript-eslint with type information, so that a promise
// the daemon forgets to await (and whose error it would lose) fails lint, not production.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import tvm from './eslint-rules/index.js';

export default tseslint.config(
  {
    ignores: ['node_modules/', 'dist/', 'native/', 'kernels/', '.cache/', '.scratch/', 'tmp/', 'coverage/'],
  },
  {
    // A stale `eslint-disable` is itself a warning, so the zero-warnings bar covers them too.
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { tvm },
    rules: {
      // The two the issue names: a daemon that forgets an awaited promise loses errors.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // An empty catch block must carry a comment saying why dropping the error is safe.
      'no-empty': ['error', { allowEmptyCatch: false }],
      // Likewise `.catch(() => {})` / `.catch(() => undefined)`: see eslint-rules/no-silent-catch.js.
      'tvm/no-silent-catch': 'error',
      // A promise deliberately not awaited (`void p`) says why: see eslint-rules/no-unexplained-void.js.
      'tvm/no-unexplained-void': 'error',
      // Off: an `async` method without an `await` still turns a throw into a rejection, which
      // is what its callers (and the Isolation / route interfaces it implements) expect.
      '@typescript-eslint/require-await': 'off',
      // `_name` marks a parameter kept for its position (a callback's signature, an override).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // A caught value passed on as it came (`catch (e) { reject(e) }`) is as fine as `throw e`.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      // `le ? buf.writeUInt16LE(v, o) : buf.writeUInt16BE(v, o);` reads fine as a statement.
      '@typescript-eslint/no-unused-expressions': ['error', { allowTernary: true }],
      // A callback bound below the closure that reads it (`let f; use(() => f?.()); f = ...`).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      // Issue 18: no line over the formatter's width (.prettierrc.json). Prettier breaks code but
      // not comments; strings, templates, regexps and URLs cannot be broken without changing them.
      'max-len': [
        'error',
        { code: 140, tabWidth: 2, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true },
      ],
    },
  },
  {
    // Tests and benchmarks read JSON from the docker CLI, the API and the registry all the time;
    // typing every such reply would be noise, and a test that misreads one fails anyway. The
    // promise rules, the ones that catch lost errors, stay on here as everywhere.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      // `expect(obj.method).toBeTypeOf('function')` passes a method without calling it.
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    // The few plain-JS files (this config, the local rules, bin/) are outside tsconfig.json.
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);

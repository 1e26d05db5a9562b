/**
 * docs/errors.md from the error-code registry (src/error-codes.ts):
 *   npx tsx scripts/error-codes-doc.ts      rewrites the page
 * test/unit/error-codes.test.ts fails when the page and the registry differ.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, ERROR_CODE_FAMILIES } from '../src/error-codes.js';

export const ERRORS_DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../docs/errors.md');

const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function renderErrorCodesDoc(): string {
  const md = [
    '# Error codes',
    '',
    "Every error tvm reports carries a stable code beside its message. The API answers in Docker's",
    'shape, `{"message": "..."}`, with the HTTP status below; the code appears in the daemon\'s log,',
    "in `tvm` CLI errors (`message (CODE)`), and on errors thrown by tvm's modules (`err.code`).",
    'This page is generated from `src/error-codes.ts`, the one registry of codes',
    '(`npx tsx scripts/error-codes-doc.ts`); a unit test (test/unit/error-codes.test.ts) fails when',
    'a code is used but not registered, registered but unused, or this page is out of date.',
    '',
    'Some codes keep the status of the error they wrap: a failed start answers with the',
    "isolation's code and status when it had one, `ERR_START_FAILED` (400) otherwise.",
    '',
  ];
  const areas = [...new Set(Object.values(ERROR_CODES).map((c) => c.area))];
  for (const area of areas) {
    md.push(`## ${area}`, '', '| Code | HTTP status | Meaning |', '| --- | --- | --- |');
    for (const [code, c] of Object.entries(ERROR_CODES)) if (c.area === area) md.push(`| \`${code}\` | ${c.status} | ${cell(c.meaning)} |`);
    md.push('');
  }
  md.push('## Codes made at run time', '', '| Code | HTTP status | Meaning |', '| --- | --- | --- |');
  for (const f of ERROR_CODE_FAMILIES) md.push(`| \`${f.pattern}\` | ${f.status || "(the daemon's)"} | ${cell(f.meaning)} |`);
  md.push('');
  return md.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  writeFileSync(ERRORS_DOC, renderErrorCodesDoc());
  process.stdout.write(`wrote ${ERRORS_DOC}\n`);
}

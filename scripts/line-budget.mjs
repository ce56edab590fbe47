// A per-file line budget for the repo's code (sources, tests, scripts, shaders): a file past it is
// doing several jobs and should be split by concept, as candle keeps SD's models to a few hundred
// lines a file. Data files (fixtures, lockfiles, JSON, Markdown) are not code and are not counted.
//
//   node scripts/line-budget.mjs   # prints every file over budget, exits 1 if there is one
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { root, trackedFiles } from './tooling.mjs';

export const LINE_BUDGET = 600;

const CODE = /\.(ts|mts|cts|tsx|js|mjs|cjs|py|wgsl|sh)$/;

/** Files over the budget, with their line counts. */
export function oversizeFiles(files = trackedFiles(CODE).filter((f) => !f.endsWith('.d.ts'))) {
  const over = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const lines = text.length === 0 ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
    if (lines > LINE_BUDGET) over.push({ file: relative(root, file), lines });
  }
  return over;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const over = oversizeFiles();
  for (const o of over) console.error(`[kiln] ${o.file}: ${o.lines} lines, over the budget of ${LINE_BUDGET}`);
  console.log(`[kiln] files over ${LINE_BUDGET} lines: ${over.length}`);
  process.exit(over.length ? 1 : 0);
}

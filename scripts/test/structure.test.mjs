// The structure checks that `npm test` runs, on small trees made here: each can fail, and each
// ignores what it should.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { importCycles } from '../import-cycles.mjs';
import { LINE_BUDGET, oversizeFiles } from '../line-budget.mjs';

const dir = mkdtempSync(join(tmpdir(), 'kiln-structure-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `files` (name → text) into a fresh folder and returns their paths. */
function write(files) {
  const base = mkdtempSync(join(dir, 't-'));
  return Object.entries(files).map(([name, text]) => {
    const path = join(base, name);
    writeFileSync(path, text);
    return path;
  });
}

describe('import cycles', () => {
  it('finds a runtime cycle, with the loop it takes', () => {
    const files = write({
      'a.ts': "import { b } from './b.js';\nexport const a = () => b();\n",
      'b.ts': "import { c } from './c.js';\nexport const b = () => c();\n",
      'c.ts': "import { a } from './a.js';\nexport const c = () => a();\n",
    });
    const cycles = importCycles(files);
    expect(cycles).toHaveLength(1);
    expect(cycles[0]).toHaveLength(4);
    expect(cycles[0][0]).toBe(cycles[0][3]);
  });

  it('ignores imports that TypeScript erases (import type, type-only names, export type)', () => {
    const files = write({
      'a.ts': "import { b } from './b.js';\nexport const a = () => b();\nexport interface A { x: number }\n",
      'b.ts':
        "import type { A } from './a.js';\nimport { type A as A2 } from './a.js';\nexport type { A } from './a.js';\nexport const b = (x?: A, y?: A2) => 1;\n",
    });
    expect(importCycles(files)).toEqual([]);
  });

  it('counts re-exports and mixed imports as runtime edges', () => {
    const files = write({
      'a.ts': "export * from './b.js';\nexport const a = 1;\n",
      'b.ts': "import { a, type X } from './a.js';\nexport const b = () => a;\nexport type X = number;\n",
    });
    expect(importCycles(files)).toHaveLength(1);
  });
});

describe('line budget', () => {
  it('reports files over the budget and passes files at it', () => {
    const [over, at] = write({
      'over.ts': 'x;\n'.repeat(LINE_BUDGET + 1),
      'at.ts': 'x;\n'.repeat(LINE_BUDGET),
    });
    const found = oversizeFiles([over, at]);
    expect(found.map((f) => f.lines)).toEqual([LINE_BUDGET + 1]);
    expect(found[0].file.endsWith('over.ts')).toBe(true);
  });
});

// Browser bundles of `@kiln/nn` must have no `node:` imports: file access lives in `@kiln/nn/node`.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NodeOnlyError } from '@kiln/nn';

const src = fileURLToPath(new URL('../src/', import.meta.url));

/** Every module specifier reachable from `entry` through relative imports (static and dynamic). */
function reachable(entry: string): { files: Set<string>; specifiers: Set<string> } {
  const files = new Set<string>();
  const specifiers = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      const spec = m[1];
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
      else specifiers.add(spec);
    }
  };
  visit(entry);
  return { files, specifiers };
}

describe('entry points', () => {
  it('@kiln/nn reaches no node: module; @kiln/nn/node holds the file access', () => {
    const main = reachable(join(src, 'index.ts'));
    expect([...main.specifiers].filter((s) => s.startsWith('node:'))).toEqual([]);
    const node = reachable(join(src, 'node.ts'));
    expect([...node.specifiers].filter((s) => s.startsWith('node:')).sort()).toEqual(['node:crypto', 'node:fs/promises', 'node:path']);
  });

  it("@kiln/nn/node's browser build has the same names, reaches no node: module, and throws NodeOnlyError", async () => {
    const node = await import('../src/node.js');
    const browser: Record<string, unknown> = await import('../src/node.browser.js');
    expect(Object.keys(browser).sort()).toEqual(Object.keys(node).sort());
    expect([...reachable(join(src, 'node.browser.ts')).specifiers].filter((s) => s.startsWith('node:'))).toEqual([]);
    expect(browser.WEIGHTS_NAMES).toEqual(node.WEIGHTS_NAMES);
    const load = browser.loadPretrained as () => unknown;
    expect(load).toThrow(NodeOnlyError);
    expect(load).toThrow(/loadPretrained \(@kiln\/nn\/node\) needs Node/);
    const File = browser.SafetensorsFile as new () => unknown;
    expect(() => new File()).toThrow(NodeOnlyError);
  });
});

// Node-only modules behind the `browser` condition: each package's `#node-only` import (and
// `@kiln/nn/node`) maps, for a browser bundler, to a module with the same names whose functions
// throw NodeOnlyError, and which itself reaches no `node:` module.
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NodeOnlyError } from '@kiln/nn';
import { nodeImports } from '../pack-bundle.mjs';

const packages = fileURLToPath(new URL('../../packages/', import.meta.url));

/** [package folder, subpath, node source, browser source] of every mapping with a `browser` condition. */
const mappings = readdirSync(packages).flatMap((dir) => {
  const file = join(packages, dir, 'package.json');
  if (!existsSync(file)) return [];
  const pkg = JSON.parse(readFileSync(file, 'utf8'));
  return Object.entries({ ...pkg.exports, ...pkg.imports })
    .filter(([, target]) => typeof target === 'object' && target.browser)
    .map(([sub, target]) => [dir, sub, target['kiln-source'], target.browser['kiln-source']]);
});

describe('browser builds of Node-only modules', () => {
  it('exist for the packages whose main entry reaches file access', () => {
    expect(mappings.map(([dir, sub]) => `${dir} ${sub}`).sort()).toEqual([
      'clip #node-only',
      'dreambooth-trainer #node-only',
      'nn ./node',
      'pipeline #node-only',
      'vae #node-only',
    ]);
  });

  it.each(mappings)('%s %s: same names, no node: imports, each function throws NodeOnlyError', async (dir, _sub, nodeSrc, browserSrc) => {
    const node = await import(join(packages, dir, nodeSrc));
    const browser = await import(join(packages, dir, browserSrc));
    expect(Object.keys(browser).sort()).toEqual(Object.keys(node).sort());
    expect(readFileSync(join(packages, dir, browserSrc), 'utf8')).not.toMatch(/from '(node:|@kiln\/[a-z-]+\/node')/);
    for (const [name, value] of Object.entries(browser)) {
      if (typeof value !== 'function') continue;
      expect(() => value(), name).toThrow(NodeOnlyError);
    }
  });
});

describe("the packed bundle's node: check", () => {
  it('finds static, re-exported and literal dynamic imports of node: modules, minified or not', () => {
    const code = `import{readFile as e}from"node:fs/promises";export*from 'node:path';const o=await import("node:os");import "node:zlib";`;
    expect(nodeImports(code).sort()).toEqual(['node:fs/promises', 'node:os', 'node:path', 'node:zlib']);
  });

  it("ignores a runtime-chosen specifier behind a Node check (tensor-core's wasm pool) and text", () => {
    expect(nodeImports('if(isNode){let{Worker:i}=await load(`node:worker_threads`)}const help="see node:fs";')).toEqual([]);
  });
});

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { fixture } from './golden.js';

/**
 * The real diffusers loaded a folder that Kiln wrote (scripts/write-for-diffusers.ts) and computed
 * the same outputs, block outputs and parameter gradients: fixtures/diffusers-run.txt is the
 * harness's report, re-made whenever the model code changes.
 */
describe('a Kiln-written VAE folder in diffusers', () => {
  const rows = readFileSync(`${fixture('.')}diffusers-run.txt`, 'utf8')
    .split('\n')
    .map((line) => /^\s+(\S+)\s+max\|diff\|=\S+ rel=(\S+)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => [m[1], Number(m[2])] as const);

  it('covers the output, every block and the parameter gradients that are not zero by construction', () => {
    const names = rows.map(([n]) => n);
    for (const o of ['sample', 'decoded', 'latent_mean', 'latent_logvar']) expect(names).toContain(`output.${o}`);
    expect(names.filter((n) => n.startsWith('trace.')).length).toBe(12);
    expect(names.filter((n) => n.includes('.param.')).length).toBe(116);
    expect(names).toContain('grad.latent_mean.input.image');
  });

  it('agrees to 1e-4 relative everywhere', () => {
    for (const [name, rel] of rows) expect(rel, name).toBeLessThan(1e-4);
  });

  it("diffusers' own LDM converter turns Kiln's single file back into Kiln's folder exactly", () => {
    const report = readFileSync(`${fixture('.')}single-file-check.txt`, 'utf8');
    expect(report).toContain('missing=[] unexpected=[]');
    expect(report.trim().split('\n').at(-1)).toBe('IDENTICAL');
  });
});

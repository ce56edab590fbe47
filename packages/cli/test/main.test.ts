// The dispatcher: `kiln --help` lists every command from a static table, and a command's module is
// imported only when that command runs (so `kiln --help` does not load the trainer, BullMQ, …).
import { describe, expect, it, vi } from 'vitest';
import { COMMANDS } from '../src/main.js';
import { kiln } from './helpers.js';

const { loaded, track } = vi.hoisted(() => {
  const loaded = new Set<string>();
  const track = (name: string) => async (original: () => Promise<object>) => {
    loaded.add(name);
    return original();
  };
  return { loaded, track };
});
vi.mock('../src/report.js', track('report'));
vi.mock('../src/generate.js', track('generate'));
vi.mock('../src/train-dreambooth.js', track('train-dreambooth'));
vi.mock('../src/worker-command.js', track('worker'));
vi.mock('../src/submit-command.js', track('submit'));
vi.mock('../src/jobs-command.js', track('jobs'));

describe('kiln (the dispatcher)', () => {
  it('--help lists every command without importing any of them', async () => {
    const r = await kiln('--help');
    expect(r.code).toBe(0);
    for (const c of Object.values(COMMANDS)) expect(r.out).toContain(c.synopsis);
    expect([...loaded]).toEqual([]);
    expect((await kiln()).code).toBe(2);
  });

  it('an unknown command is a usage error with the list, still without importing a command', async () => {
    const r = await kiln('genrate');
    expect(r.code).toBe(2);
    expect(r.err).toContain("kiln: unknown command 'genrate'");
    expect(r.err).toContain(COMMANDS.generate.synopsis);
    expect((await kiln('toString')).code).toBe(2);
    expect([...loaded]).toEqual([]);
  });

  it("a command's --help imports that command only, and each synopsis is its usage's first line", async () => {
    const r = await kiln('report', '--help');
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[0]).toBe(COMMANDS.report.synopsis);
    expect([...loaded]).toEqual(['report']);
    for (const [name, c] of Object.entries(COMMANDS)) expect((await c.load()).usage.split('\n')[0], name).toBe(c.synopsis);
  });

  it('`kiln generate --help` prints the same usage without importing the command (and so the pipeline)', async () => {
    loaded.clear();
    const r = await kiln('generate', '--help');
    expect(r.code).toBe(0);
    expect([...loaded]).toEqual([]);
    expect(r.out).toBe((await COMMANDS.generate.load()).usage);
    expect(r.out).toContain('--strength S');
  });

  it('a failing command prints its typed error as one line, exit 2 for usage and 1 for input', async () => {
    const usage = await kiln('report');
    expect(usage.code).toBe(2);
    expect(usage.err).toMatch(/^kiln report: /);
    const missing = await kiln('report', '/nonexistent/kiln-run');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^kiln report: .*nonexistent/);
  });
});

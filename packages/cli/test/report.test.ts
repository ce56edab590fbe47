import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '@kiln/cli';
import { openRun } from '@kiln/tracking/node';

async function run(name: string): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'kiln-cli-')), name);
  const log = openRun(dir, { reportTo: [] });
  log.log(1, { loss: 1 });
  log.logHparams({ name });
  await log.close();
  return dir;
}

async function kiln(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    argv,
    (s) => (out += s),
    (s) => (err += s),
  );
  return { code, out, err };
}

describe('kiln report', () => {
  it("rebuilds one run's report, and compares several on one page", async () => {
    const [a, b] = [await run('a'), await run('b')];
    expect(existsSync(join(a, 'report.html'))).toBe(false);
    expect(await kiln('report', a)).toMatchObject({ code: 0, out: `kiln report: wrote ${join(a, 'report.html')}` });
    const out = join(mkdtempSync(join(tmpdir(), 'kiln-cli-')), 'both.html');
    expect((await kiln('report', a, b, '--out', out)).code).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('Kiln runs: a, b');
  });

  it('explains bad usage and bad folders in one line, with exit codes 2 and 1', async () => {
    expect(await kiln('report')).toMatchObject({ code: 2, err: expect.stringContaining('name at least one run folder') });
    expect(await kiln('report', '--bogus', 'x')).toMatchObject({ code: 2, err: expect.stringContaining("Unknown option '--bogus'") });
    expect(await kiln('repotr')).toMatchObject({ code: 2, err: expect.stringContaining("unknown command 'repotr'") });
    const empty = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
    expect(await kiln('report', empty)).toMatchObject({
      code: 1,
      err: `kiln report: run folder ${empty} has no metrics.jsonl: not a Kiln run, or it logged nothing`,
    });
    expect((await kiln('report', '--help')).out).toContain('kiln report RUN_DIR');
  });
});

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/main.js';

const run = async (argv: string[]) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, (s) => out.push(s), (s) => err.push(s));
  return { code, out: out.join('\n'), err: err.join('\n') };
};

describe('kiln train-dreambooth', () => {
  it('--help prints every option with its default', async () => {
    const r = await run(['train-dreambooth', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--learning_rate (default: 0.000005)');
    expect(r.out).toContain('--resume_from_checkpoint (default: None)');
    expect((await run(['--help'])).out).toContain('kiln train-dreambooth');
  });

  it('an unknown flag is a usage error that suggests the nearest option', async () => {
    const r = await run(['train-dreambooth', '--instance_dir', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown flag --instance_dir; did you mean --instance_data_dir\?/);
  });

  it('a folder without images fails with its name, exit 1', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'kiln-cli-db-'));
    const r = await run(['train-dreambooth', '--pretrained_model_name_or_path', 'sd15', '--instance_data_dir', empty, '--instance_prompt', 'x', '--output_dir', join(empty, 'out')]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${empty} has no images`);
  });
});

import { parseArgs } from 'node:util';
import { writeReport } from '@kiln/tracking/node';
import { UsageError } from './usage-error.js';

export const REPORT_USAGE = `kiln report RUN_DIR [RUN_DIR…] [--out FILE]

Rebuilds the HTML report from each run's metrics.jsonl. One run: writes RUN_DIR/report.html
(or FILE). Several runs: compares them on one page (curves overlaid, configs diffed, final
samples side by side) in FILE, default kiln-report.html.`;

/** `kiln report`: resolves to the path written. */
export async function report(args: readonly string[]): Promise<string> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], allowPositionals: true, options: { out: { type: 'string', short: 'o' } } });
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\n\n${REPORT_USAGE}`);
  }
  const dirs = parsed.positionals;
  if (dirs.length === 0) throw new UsageError(`name at least one run folder\n\n${REPORT_USAGE}`);
  return writeReport(dirs, parsed.values.out ?? (dirs.length > 1 ? 'kiln-report.html' : undefined));
}

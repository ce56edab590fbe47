import { open, readFile } from 'node:fs/promises';

/** One line of results.jsonl: what became of one input (a `--batch` line, or the command line's prompt). */
export interface ResultLine {
  /** 1-based line of the batch file (1 for --prompt). */
  line: number;
  /** sha-256 of the input line's text, so an edited line is not taken for done. */
  input: string;
  prompt?: string;
  files?: string[];
  seeds?: number[];
  /** Milliseconds: per image, and the mean per denoising step. */
  timings?: { imagesMs: number[]; stepMs: number };
  error?: string;
}

/**
 * The results already in `path`: every parseable line (a line torn by a kill mid-write is
 * skipped, and redone on the rerun).
 */
export async function readResults(path: string): Promise<ResultLine[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return text.split('\n').flatMap((l) => {
    try {
      const r = JSON.parse(l) as ResultLine;
      return typeof r === 'object' && r !== null && typeof r.line === 'number' ? [r] : [];
    } catch {
      return [];
    }
  });
}

/**
 * Appends one result line and fsyncs it before returning, so a line on disk means its images are
 * on disk (they were written atomically first). Starts on a new line if a killed run left a torn one.
 */
export async function appendResult(path: string, result: ResultLine): Promise<void> {
  const fh = await open(path, 'a+');
  try {
    const { size } = await fh.stat();
    let sep = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      if (last[0] !== 0x0a) sep = '\n';
    }
    await fh.write(`${sep}${JSON.stringify(result)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

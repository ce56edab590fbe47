// Shared by the cli tests: the `kiln` command run in-process, its stdout and stderr collected.
import { main } from '@kiln/cli';

/** Runs `kiln …argv` and returns its exit code and what it printed. */
export async function kiln(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(
    argv,
    (s) => (out += s),
    (s) => (err += `${s}\n`),
  );
  return { code, out, err };
}

// Command-line flags of the benchmark scripts: `--name value`, nothing more.

const args = process.argv.slice(2);

/** The value after `--name`, or undefined when the flag is absent. */
export const opt = (name: string): string | undefined => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : undefined);

/** Whether the bare flag `--name` was given. */
export const flag = (name: string): boolean => args.includes(`--${name}`);

/**
 * The `kiln` command line as a function, for programs and tests; the `kiln` binary calls it.
 *
 * @packageDocumentation
 */
export { main } from './main.js';
export { UsageError } from './usage-error.js';

// `#node-only` in a browser bundle: the same names as node-only.ts, each throwing NodeOnlyError.
import { nodeOnly } from '@kiln/nn';

export const nodeEnvironment = nodeOnly('the filesystem trainer environment (pass a storage in a browser)');
export const decodeWebp = nodeOnly('decodeWebp from @kiln/dreambooth-trainer/node');

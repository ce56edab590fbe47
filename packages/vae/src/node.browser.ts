// `#node-only` (vae's node.ts: a diffusers folder on disk) in a browser bundle: the same names,
// each throwing NodeOnlyError.
import { nodeOnly } from '@kiln/nn';

export const readVAEFolder = nodeOnly('AutoencoderKL.fromPretrained');

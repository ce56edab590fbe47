// `#node-only` (clip's node.ts: tokenizer files on disk) in a browser bundle: the same names, each
// throwing NodeOnlyError. In a browser, CLIPTokenizer.fromFiles takes the files' contents.
import { nodeOnly } from '@kiln/nn';

export const readPretrainedFiles = nodeOnly('CLIPTokenizer.fromPretrained');
export const readMergesFile = nodeOnly('reading a merges file (CLIPTokenizer.fromMergesFile, the bundled OpenAI vocabulary)');
export const writeFilesAtomically = nodeOnly('CLIPTokenizer.savePretrained');

import { fileURLToPath } from 'node:url';

import { CLIPTokenizer } from '../src/index.js';

// The repo is checked out next to the shared data folder: <root>/../shared/data/...
const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const MERGES_GZ = `${repoRoot}../shared/data/clip/bpe_simple_vocab_16e6.txt.gz`;

let shared: Promise<CLIPTokenizer> | undefined;
/** One tokenizer per test file; do not add tokens to it. */
export function sharedTokenizer(): Promise<CLIPTokenizer> {
  shared ??= CLIPTokenizer.fromMergesFile(MERGES_GZ);
  return shared;
}

export interface GoldenCase {
  prompt: string;
  tokens: string[];
  ids: number[];
  input_ids: number[];
  decoded: string;
}
export interface Goldens {
  vocab_size: number;
  hf_vocab_json_sha256: string;
  hf_merges_txt_sha256: string;
  cases: GoldenCase[];
  html_unescape: Array<{ input: string; output: string }>;
}

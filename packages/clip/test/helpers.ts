import { fileURLToPath } from 'node:url';

import { CLIPTokenizer } from '../src/index.js';

/** The vocabulary shipped in the package (data/, copied from openai/CLIP with its LICENSE). */
export const MERGES_GZ = fileURLToPath(new URL('../data/bpe_simple_vocab_16e6.txt.gz', import.meta.url));

let shared: Promise<CLIPTokenizer> | undefined;
/** One tokenizer per test file (the shipped vocabulary); do not add tokens to it. */
export function sharedTokenizer(): Promise<CLIPTokenizer> {
  shared ??= CLIPTokenizer.fromOpenAI();
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

// Node-only file access for the tokenizer. Nothing else in the package imports node:*
// modules; the tokenizer loads this file with a dynamic import on first use, so bundles for
// browsers that never call fromPretrained/fromMergesFile/savePretrained never execute it.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { writeFileAtomic } from '@kiln/nn/node';

import { TokenizerError } from './errors.js';
import type { HuggingFaceTokenizerFiles } from './tokenizer-options.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type FileName = keyof HuggingFaceTokenizerFiles;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch (e) {
    throw new TokenizerError(file, 'is not valid UTF-8 text', { cause: e });
  }
}

async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new TokenizerError(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

/**
 * Read a tokenizer folder: `dir/tokenizer/` when it holds `vocab.json` (a diffusers model
 * folder), else `dir/`. Returns the texts and the full paths (for error messages).
 * @internal
 */
export async function readPretrainedFiles(dir: string): Promise<{ files: HuggingFaceTokenizerFiles; names: Record<FileName, string> }> {
  const base = (await isFile(join(dir, 'tokenizer', 'vocab.json'))) ? join(dir, 'tokenizer') : dir;
  const names: Record<FileName, string> = {
    'vocab.json': join(base, 'vocab.json'),
    'merges.txt': join(base, 'merges.txt'),
    'tokenizer_config.json': join(base, 'tokenizer_config.json'),
    'special_tokens_map.json': join(base, 'special_tokens_map.json'),
    'added_tokens.json': join(base, 'added_tokens.json'),
  };
  for (const required of ['vocab.json', 'merges.txt'] as const) {
    if (!(await isFile(names[required]))) {
      throw new TokenizerError(names[required], `not found (looked in ${join(dir, 'tokenizer')} and ${dir})`);
    }
  }
  const files: Mutable<HuggingFaceTokenizerFiles> = {
    'vocab.json': decodeUtf8(await readBytes(names['vocab.json']), names['vocab.json']),
    'merges.txt': decodeUtf8(await readBytes(names['merges.txt']), names['merges.txt']),
  };
  for (const optional of ['tokenizer_config.json', 'added_tokens.json'] as const) {
    if (await isFile(names[optional])) files[optional] = decodeUtf8(await readBytes(names[optional]), names[optional]);
  }
  return { files, names };
}

/**
 * Read OpenAI's merges file, gunzipping it when it starts with the gzip magic bytes.
 * @internal
 */
export async function readMergesFile(file: string | URL): Promise<string> {
  const path = typeof file === 'string' ? file : fileURLToPath(file);
  let bytes = await readBytes(path);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new TokenizerError(path, `is not a valid gzip file (${(e as Error).message})`, { cause: e });
    }
  }
  return decodeUtf8(bytes, path);
}

/**
 * Write each file atomically (nn's writer: temporary name, fsync, rename), so readers never see a
 * half-written file.
 * @internal
 */
export async function writeFilesAtomically(dir: string, files: HuggingFaceTokenizerFiles): Promise<void> {
  for (const [name, text] of Object.entries(files) as Array<[FileName, string | undefined]>) {
    if (text !== undefined) await writeFileAtomic(join(dir, name), text);
  }
}

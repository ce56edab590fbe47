// OpenAI's BPE vocabulary ships inside the package (data/bpe_simple_vocab_16e6.txt.gz, MIT,
// data/LICENSE), as openai/CLIP ships it next to simple_tokenizer.py, so a tokenizer needs no
// download and no files from the user.
//
// Why an asset URL and not a generated module: `new URL('<literal>', import.meta.url)` is the
// standard way for an ES module to find a file beside it. Node resolves it to the installed
// file (src/ and dist/ are both one level below the package root, so one path serves the
// sources and the build); Vite, webpack 5, Parcel and Rollup's asset plugins recognise the
// literal pattern and copy the file into the app's bundle; vitest's browser mode serves it from
// the dev server. The 1.3 MB gzip file stays a binary asset that is fetched only when
// `fromOpenAI()` is called, instead of a 1.8 MB base64 string inside every bundle that imports
// @kiln/clip. Apps whose bundler does not handle the pattern pass `{ url }` to `fromOpenAI`.
import { TokenizerError } from './errors.js';
import { parseOpenAIMerges, type VocabAndMerges } from './vocab-files.js';

/** The shipped file, resolved against this module (see the note at the top). */
function shippedVocabUrl(): URL {
  return new URL('../data/bpe_simple_vocab_16e6.txt.gz', import.meta.url);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

async function gunzip(bytes: Uint8Array, file: string): Promise<Uint8Array> {
  try {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  } catch (e) {
    throw new TokenizerError(file, `is not a valid gzip file (${(e as Error).message})`, { cause: e });
  }
}

/** Read OpenAI's merges file from a URL: `file:` through Node's fs, anything else with fetch. */
async function readMergesUrl(url: URL): Promise<string> {
  if (url.protocol === 'file:') {
    const { readMergesFile } = await import('#node-only');
    return readMergesFile(url);
  }
  let bytes: Uint8Array;
  try {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
    bytes = new Uint8Array(await response.arrayBuffer());
  } catch (e) {
    throw new TokenizerError(url.href, `cannot be fetched (${(e as Error).message})`, { cause: e });
  }
  // A server may already have undone the gzip (Content-Encoding); only gunzip what still is.
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = await gunzip(bytes, url.href);
  try {
    return strictUtf8.decode(bytes);
  } catch (e) {
    throw new TokenizerError(url.href, 'is not valid UTF-8 text', { cause: e });
  }
}

// Parsed once per URL: building the vocabulary takes ~0.3 s, and the tokenizer's constructor
// copies what it keeps, so tokenizers made later (and given added tokens) share nothing mutable.
const parsed = new Map<string, Promise<VocabAndMerges>>();

/**
 * The vocabulary and merges of OpenAI's merges file at `url` (default: the copy shipped in
 * this package), parsed and cached.
 * @internal
 */
export function loadOpenAIVocab(url?: string | URL): Promise<VocabAndMerges> {
  let resolved: URL;
  try {
    resolved = url === undefined ? shippedVocabUrl() : new URL(url, globalThis.location?.href);
  } catch (e) {
    return Promise.reject(new TokenizerError(String(url), 'is not a URL (use CLIPTokenizer.fromMergesFile for a path)', { cause: e }));
  }
  const key = resolved.href;
  let entry = parsed.get(key);
  if (entry === undefined) {
    entry = readMergesUrl(resolved).then((text) => parseOpenAIMerges(text, key));
    entry.catch(() => parsed.delete(key));
    parsed.set(key, entry);
  }
  return entry;
}

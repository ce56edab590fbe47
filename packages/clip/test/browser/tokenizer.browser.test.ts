/**
 * The tokenizer in a real browser (vitest browser mode, Chromium): `CLIPTokenizer.fromOpenAI()`
 * finds the vocabulary shipped in the package through `new URL(..., import.meta.url)` (served
 * by Vite), fetches it and gunzips it with `DecompressionStream`, with no Node API.
 */
import { describe, expect, it } from 'vitest';
import { CLIPTokenizer } from '@kiln/clip';
import goldens from '../fixtures/tokenizer-goldens.json';

describe('CLIPTokenizer in the browser', () => {
  it('loads the shipped OpenAI vocabulary and matches every golden prompt', async () => {
    expect(typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node).not.toBe('string');
    const tok = await CLIPTokenizer.fromOpenAI();
    expect(tok.vocabSize).toBe(49408);
    for (const c of goldens.cases) {
      expect(tok.encode(c.prompt), c.prompt).toEqual(c.input_ids);
      expect(tok.decode(c.ids)).toBe(c.decoded);
    }
  });

  it('reports a vocabulary URL that does not exist as a TokenizerError naming it', async () => {
    await expect(CLIPTokenizer.fromOpenAI({ url: '/no/such/bpe.txt.gz' })).rejects.toThrow(
      /no\/such\/bpe\.txt\.gz.*cannot be fetched \(HTTP 404/,
    );
  });
});

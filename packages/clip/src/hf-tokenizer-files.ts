// Hugging Face's tokenizer file layout (vocab.json, merges.txt, tokenizer_config.json,
// special_tokens_map.json, added_tokens.json): reading it into constructor options and
// writing a tokenizer's state back out as transformers' save_pretrained does.
import type { Merge } from './bpe.js';
import type { CLIPTokenizerOptions, HuggingFaceTokenizerFiles, LoadOptions } from './tokenizer-options.js';
import {
  END_OF_TEXT,
  START_OF_TEXT,
  parseAddedTokensJson,
  parseMergesTxt,
  parseTokenizerConfig,
  parseVocabJson,
  serializeMergesTxt,
  serializeVocabJson,
} from './vocab-files.js';

/**
 * Constructor options from the text of Hugging Face's tokenizer files.
 * @internal
 */
export function optionsFromHuggingFaceFiles(
  files: HuggingFaceTokenizerFiles,
  options: LoadOptions & { names?: Partial<Record<keyof HuggingFaceTokenizerFiles, string>> },
): CLIPTokenizerOptions {
  const n = options.names ?? {};
  const vocabFile = n['vocab.json'] ?? 'vocab.json';
  const mergesFile = n['merges.txt'] ?? 'merges.txt';
  const configFile = n['tokenizer_config.json'] ?? 'tokenizer_config.json';
  const addedFile = n['added_tokens.json'] ?? 'added_tokens.json';
  const vocab = parseVocabJson(files['vocab.json'], vocabFile);
  const merges = parseMergesTxt(files['merges.txt'], mergesFile);
  const configText = files['tokenizer_config.json'];
  const config = configText === undefined ? undefined : parseTokenizerConfig(configText, configFile);
  const addedTokens = new Map<string, number>();
  for (const [id, t] of config?.addedTokens ?? []) if (!vocab.has(t.content)) addedTokens.set(t.content, id);
  const addedText = files['added_tokens.json'];
  if (addedText !== undefined) for (const [t, id] of parseAddedTokensJson(addedText, addedFile)) if (!vocab.has(t)) addedTokens.set(t, id);
  return {
    vocab,
    merges,
    addedTokens,
    modelMaxLength: options.modelMaxLength ?? config?.modelMaxLength,
    padToken: options.padToken ?? config?.padToken,
    sourceNames: { vocab: vocabFile, merges: mergesFile, config: configFile },
  };
}

/** What {@link huggingFaceFileTexts} writes. @internal */
export interface TokenizerState {
  readonly vocab: ReadonlyMap<string, number>;
  readonly merges: readonly Merge[];
  readonly added: ReadonlyMap<string, number>;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly padToken: string;
  readonly modelMaxLength: number;
}

/**
 * The files' text as transformers' `save_pretrained` writes them.
 * @internal
 */
export function huggingFaceFileTexts(t: TokenizerState): HuggingFaceTokenizerFiles {
  const specialEntry = (content: string, special: boolean) => ({
    content,
    lstrip: false,
    normalized: !special,
    rstrip: false,
    single_word: false,
    special,
  });
  const decoderEntries: Array<[number, ReturnType<typeof specialEntry>]> = [
    [t.bosTokenId, specialEntry(START_OF_TEXT, true)],
    [t.eosTokenId, specialEntry(END_OF_TEXT, true)],
  ];
  if (t.padTokenId !== t.eosTokenId && t.padTokenId !== t.bosTokenId) decoderEntries.push([t.padTokenId, specialEntry(t.padToken, true)]);
  for (const [token, id] of t.added) decoderEntries.push([id, specialEntry(token, false)]);
  decoderEntries.sort((a, b) => a[0] - b[0]);
  const config = {
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(decoderEntries.map(([id, e]) => [String(id), e])),
    bos_token: START_OF_TEXT,
    clean_up_tokenization_spaces: true,
    do_lower_case: true,
    eos_token: END_OF_TEXT,
    errors: 'replace',
    model_max_length: t.modelMaxLength,
    pad_token: t.padToken,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: END_OF_TEXT,
  };
  const specialMap = { bos_token: START_OF_TEXT, eos_token: END_OF_TEXT, pad_token: t.padToken, unk_token: END_OF_TEXT };
  const files: { -readonly [K in keyof HuggingFaceTokenizerFiles]: HuggingFaceTokenizerFiles[K] } = {
    'vocab.json': serializeVocabJson(t.vocab),
    'merges.txt': serializeMergesTxt(t.merges),
    'tokenizer_config.json': JSON.stringify(config, null, 2) + '\n',
    'special_tokens_map.json': JSON.stringify(specialMap, null, 2) + '\n',
  };
  if (t.added.size > 0) files['added_tokens.json'] = JSON.stringify(Object.fromEntries(t.added), null, 2) + '\n';
  return files;
}

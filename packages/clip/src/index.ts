// Public API of @kiln/clip. Everything exported here is browser-safe; the Node file helpers
// in ./node.ts are reached only through CLIPTokenizer's async loaders (dynamic import).

export { TokenizerError } from './errors.js';
export { bytesToUnicode } from './bytes-to-unicode.js';
export { BytePairEncoder, END_OF_WORD } from './bpe.js';
export type { BytePairEncoderOptions, Merge } from './bpe.js';
export { cleanText, htmlUnescape } from './clean-text.js';
export { preTokenize } from './pretokenize.js';
export {
  CLIP_MERGE_COUNT,
  END_OF_TEXT,
  START_OF_TEXT,
  buildVocabFromMerges,
  parseAddedTokensJson,
  parseMergesTxt,
  parseOpenAIMerges,
  parseTokenizerConfig,
  parseVocabJson,
  serializeMergesTxt,
  serializeVocabJson,
} from './vocab-files.js';
export type { TokenizerConfig, VocabAndMerges } from './vocab-files.js';
export { CLIPTokenizer } from './tokenizer.js';
export { CLIP_MAX_LENGTH, MAX_ENCODE_LENGTH } from './tokenizer-options.js';
export type {
  CLIPTokenizerOptions,
  DecodeOptions,
  EncodeOptions,
  HuggingFaceTokenizerFiles,
  LoadOptions,
  TokenizerSourceNames,
} from './tokenizer-options.js';
export {
  CLIPTextModel,
  CLIPTextTransformer,
  CLIPTextEmbeddings,
  CLIPEncoder,
  CLIPEncoderLayer,
  CLIPAttention,
  CLIPMLP,
} from './text-model.js';
export type { CLIPTextModelOutput, CLIPTextForwardOptions } from './text-model.js';
export { CLIPConfigError, CLIPTextConfigSchema, parseCLIPTextConfig } from './text-config.js';
export type { CLIPTextConfig, CLIPTextConfigInput } from './text-config.js';

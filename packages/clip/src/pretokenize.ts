import { REGEX_WHITESPACE } from './clean-text.js';

// OpenAI's pattern is compiled with the `regex` module and re.IGNORECASE. On text that is
// already lower-case, IGNORECASE changes exactly two things (checked over all of Unicode):
// U+017F 'ſ' matches the literal 's' (so "'ſ" is a contraction and "<|ſtartoftext|>" a
// special-token match), and U+0345 (which case-folds to a letter) matches no branch at all,
// so it is dropped. Both are spelled out here instead of using the `i` flag, whose folding
// rules differ from the `regex` module's.
const PATTERN = new RegExp(
  [
    '<\\|[sſ]tartoftext\\|>',
    '<\\|endoftext\\|>',
    "'[sſ]",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    '\\p{L}+',
    '\\p{N}',
    `[^${REGEX_WHITESPACE}\\p{L}\\p{N}\\u0345]+`,
  ].join('|'),
  'gu',
);

/**
 * Split cleaned text into the words BPE runs on, with OpenAI CLIP's pattern
 * `<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`.
 * Numbers come out one digit at a time; whitespace is dropped.
 *
 * Letter and number classes come from the JavaScript engine's Unicode tables (Unicode 15.1
 * or later in Node 20), so characters assigned after the Python `regex` module's Unicode
 * version can split differently; no character in the CLIP vocabulary is affected.
 *
 * @example
 * ```ts
 * import { preTokenize } from '@kiln/clip';
 * preTokenize("it's 42!"); // ['it', "'s", '4', '2', '!']
 * ```
 */
export function preTokenize(cleanedText: string): string[] {
  return cleanedText.match(PATTERN) ?? [];
}

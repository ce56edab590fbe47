import { REGEX_WHITESPACE } from './clean-text.js';

// OpenAI's pattern is compiled with the `regex` module and re.IGNORECASE. On text that is
// already lower-case, IGNORECASE changes exactly two things (checked over all of Unicode):
// U+017F 'ſ' matches the literal 's' (so "'ſ" is a contraction and "<|ſtartoftext|>" a
// special-token match), and U+0345 (which case-folds to a letter) matches no branch at all,
// so it is dropped. Both are spelled out here instead of using the `i` flag, whose folding
// rules differ from the `regex` module's.
// Runs are matched at most RUN characters at a time: irregexp keeps a backtracking entry per
// character of a `+` run, so one 5-million-letter word overflowed the stack. A run cut at RUN
// is continued with its own class only, which is what the greedy `+` would have taken.
const RUN = 4096;
const LETTERS = '\\p{L}';
const OTHER = `[^${REGEX_WHITESPACE}\\p{L}\\p{N}\\u0345]`;
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
    `(${LETTERS}{1,${RUN}})`,
    '\\p{N}',
    `(${OTHER}{1,${RUN}})`,
  ].join('|'),
  'gu',
);
const MORE_LETTERS = new RegExp(`${LETTERS}{1,${RUN}}`, 'uy');
const MORE_OTHER = new RegExp(`${OTHER}{1,${RUN}}`, 'uy');

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
  const words: string[] = [];
  PATTERN.lastIndex = 0;
  for (let m = PATTERN.exec(cleanedText); m !== null; m = PATTERN.exec(cleanedText)) {
    let word = m[0];
    const more = m[1] !== undefined ? MORE_LETTERS : m[2] !== undefined ? MORE_OTHER : undefined;
    if (more !== undefined && word.length >= RUN) {
      // A full RUN can end in the middle of the run: take the rest of it.
      const parts = [word];
      more.lastIndex = PATTERN.lastIndex;
      for (let r = more.exec(cleanedText); r !== null; r = more.exec(cleanedText)) {
        parts.push(r[0]);
        PATTERN.lastIndex = more.lastIndex;
      }
      word = parts.join('');
    }
    words.push(word);
  }
  return words;
}

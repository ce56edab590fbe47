// Cutting raw text into chunks that can be cleaned and pre-tokenised one at a time, so that
// `encode` with truncation reads only as much of a long prompt as its ids need, and memory
// stays bounded by the chunk instead of the whole text.

/** Characters per chunk before looking for the next space to cut at. */
const CHUNK_CHARS = 16_384;

/**
 * Call `fn` on consecutive chunks of `text`, cut just before a U+0020 space, until `fn`
 * returns false. The tokens of the chunks, concatenated, are the tokens of the whole text,
 * because a plain space is a boundary for every step of CLIP's text clean-up: no HTML
 * entity contains one (Python's `html.unescape` stops at it), NFC never composes across it
 * (it is a starter that combines with nothing), lower-casing's Final_Sigma context ends at it
 * (it is neither cased nor case-ignorable), whitespace runs collapse to a space either side
 * and are dropped by pre-tokenising, whose every branch excludes whitespace.
 * A stretch without spaces longer than a chunk is passed whole.
 * @internal
 */
export function forEachPlainChunk(text: string, fn: (chunk: string) => boolean): void {
  if (text.length <= CHUNK_CHARS) {
    fn(text);
    return;
  }
  let start = 0;
  while (start < text.length) {
    let end = start + CHUNK_CHARS;
    if (end < text.length) {
      const space = text.indexOf(' ', end);
      end = space === -1 ? text.length : space;
    }
    if (!fn(text.slice(start, end))) return;
    start = end;
  }
}

import { HTML5_ENTITIES_JSON } from './html-entities.js';

// Python's str.isspace() set, which str.strip() uses. JS trim() differs: it strips U+FEFF and
// keeps U+0085 and U+001C..U+001F, so it cannot stand in for Python here.
const PY_ISSPACE = '\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
// The `regex` module's \s (Unicode White_Space): like isspace() without U+001C..U+001F.
// JS's \s adds U+FEFF and lacks U+0085, so the class is spelled out.
/** @internal */
export const REGEX_WHITESPACE = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const STRIP_RE = new RegExp(`^[${PY_ISSPACE}]+|[${PY_ISSPACE}]+$`, 'gu');
const WHITESPACE_RUN_RE = new RegExp(`[${REGEX_WHITESPACE}]+`, 'gu');

/**
 * Python's `str.strip()` with no arguments.
 * @internal
 */
export function pyStrip(text: string): string {
  return text.replace(STRIP_RE, '');
}

// Python's html module maps these numeric references the way browsers do (Windows-1252 for
// the C1 range), rather than to the code point they name.
const INVALID_CHARREFS: ReadonlyMap<number, string> = new Map([
  [0x00, '\ufffd'],
  [0x0d, '\r'],
  [0x80, '\u20ac'],
  [0x81, '\x81'],
  [0x82, '\u201a'],
  [0x83, '\u0192'],
  [0x84, '\u201e'],
  [0x85, '\u2026'],
  [0x86, '\u2020'],
  [0x87, '\u2021'],
  [0x88, '\u02c6'],
  [0x89, '\u2030'],
  [0x8a, '\u0160'],
  [0x8b, '\u2039'],
  [0x8c, '\u0152'],
  [0x8d, '\x8d'],
  [0x8e, '\u017d'],
  [0x8f, '\x8f'],
  [0x90, '\x90'],
  [0x91, '\u2018'],
  [0x92, '\u2019'],
  [0x93, '\u201c'],
  [0x94, '\u201d'],
  [0x95, '\u2022'],
  [0x96, '\u2013'],
  [0x97, '\u2014'],
  [0x98, '\u02dc'],
  [0x99, '\u2122'],
  [0x9a, '\u0161'],
  [0x9b, '\u203a'],
  [0x9c, '\u0153'],
  [0x9d, '\x9d'],
  [0x9e, '\u017e'],
  [0x9f, '\u0178'],
]);

function isInvalidCodepoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) ||
    cp === 0xb ||
    (cp >= 0xe && cp <= 0x1f) ||
    (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) ||
    (cp & 0xfffe) === 0xfffe
  );
}

let entities: ReadonlyMap<string, string> | undefined;
function entityTable(): ReadonlyMap<string, string> {
  entities ??= new Map(Object.entries(JSON.parse(HTML5_ENTITIES_JSON) as Record<string, string>));
  return entities;
}

const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

function replaceCharref(_match: string, ref: string): string {
  if (ref[0] === '#') {
    const hex = ref[1] === 'x' || ref[1] === 'X';
    const digits = ref.slice(hex ? 2 : 1).replace(/;$/, '');
    // parseInt of a long digit string overflows to a huge float, which the range check
    // below treats exactly like Python's big int.
    const num = parseInt(digits, hex ? 16 : 10);
    const mapped = INVALID_CHARREFS.get(num);
    if (mapped !== undefined) return mapped;
    if ((num >= 0xd800 && num <= 0xdfff) || num > 0x10ffff) return '\ufffd';
    if (isInvalidCodepoint(num)) return '';
    return String.fromCodePoint(num);
  }
  const table = entityTable();
  const direct = table.get(ref);
  if (direct !== undefined) return direct;
  // HTML5's longest-prefix rule for legacy names written without ';' ("&copy2024").
  const cps = Array.from(ref);
  for (let x = cps.length - 1; x > 1; x--) {
    const prefix = cps.slice(0, x).join('');
    const value = table.get(prefix);
    if (value !== undefined) return value + cps.slice(x).join('');
  }
  return '&' + ref;
}

/**
 * Python's `html.unescape`: HTML5 named references (including legacy names without `;` and
 * the longest-prefix rule), decimal and hex references with HTML5's replacements for
 * invalid code points.
 *
 * @example
 * ```ts
 * import { htmlUnescape } from '@kiln/clip';
 * htmlUnescape('salt &amp; pepper &#x263A;'); // 'salt & pepper ☺'
 * ```
 */
export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF_RE, replaceCharref);
}

/**
 * The text clean-up CLIP applies before pre-tokenising, as `simple_tokenizer.py` does it:
 * `whitespace_clean(basic_clean(text)).lower()`.
 *
 * `basic_clean` upstream starts with `ftfy.fix_text`, which has no JavaScript port. Of what
 * it does, this keeps the parts that change ordinary prompts: NFC normalisation (ftfy's
 * last step; here it runs first, before unescaping) and HTML unescaping (done twice, as
 * upstream does after ftfy). Not emulated: mojibake repair, uncurling quotes, ligature and
 * full-width folding, C1/control-character fixes, ftfy's own extra unescape pass. On text
 * containing those, ids can differ from a Python install that has ftfy (and Hugging Face's
 * tokenizer without ftfy differs again, in other ways).
 *
 * @example
 * ```ts
 * import { cleanText } from '@kiln/clip';
 * cleanText('  A  Photo &amp;\tCafe\u0301 '); // 'a photo & café'
 * ```
 */
export function cleanText(text: string): string {
  let t = text.normalize('NFC');
  t = pyStrip(htmlUnescape(htmlUnescape(t)));
  t = pyStrip(t.replace(WHITESPACE_RUN_RE, ' '));
  // JS and Python both apply Unicode's full lower-case mapping, Final_Sigma included.
  return t.toLowerCase();
}

import type { RunData } from '../records.js';
import { CLIENT_JS } from './client.js';
import { reportRun } from './data.js';
import { UPLOT_CSS, UPLOT_JS } from './uplot-vendor.js';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1a1a1a; }
h1 { font-size: 20px; } h2 { font-size: 16px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 14px; margin: 12px 0 4px; } .chart { margin-bottom: 16px; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; text-align: left; vertical-align: top; }
table.kv td, table.kv th { border-bottom: 1px solid #eee; font-family: ui-monospace, monospace; font-size: 12px; }
tr.diff td { background: #fff3bf; } .grid img { image-rendering: pixelated; border: 1px solid #ddd; }
.caption { font-size: 11px; color: #555; max-width: 160px; } .empty { color: #888; } #warnings li { color: #c92a2a; }
`;

const escapeHtml = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Embeds JSON in a `<script>` without letting any string close the element. */
const scriptJson = (v: unknown): string =>
  JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');

/** A script's source cannot contain `</script`; a backslash keeps it the same string in JavaScript. */
const inlineScript = (js: string): string => js.replace(/<\/script/gi, '<\\/script');

/**
 * The self-contained HTML report for one run or several compared: loss/LR/throughput/memory
 * curves (zoom by dragging, TensorBoard smoothing), validation image grids by step, and the
 * config, final metrics and environment as tables with differing rows marked. It needs no
 * server and no network: uPlot, the data and the images are inlined.
 *
 * @example
 * ```ts
 * const html = buildReport([{ name: 'dog', records: memory.records }]);
 * ```
 */
export function buildReport(runs: readonly RunData[], options: { title?: string } = {}): string {
  const title = options.title ?? (runs.length === 1 ? `Kiln run: ${runs[0].name}` : `Kiln runs: ${runs.map((r) => r.name).join(', ')}`);
  const data = { title, runs: runs.map(reportRun) };
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>${UPLOT_CSS}</style><style>${STYLE}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<ul id="warnings"></ul>
<h2>Curves</h2>
<label>smoothing <input id="smoothing" type="range" min="0" max="0.99" step="0.01" value="0.6"> <span id="smoothing-value">0.60</span></label>
<p class="empty">Drag across a chart to zoom; double-click to reset.</p>
<section id="charts"></section>
<h2>Samples</h2><section id="images"></section>
<h2>Text</h2><section id="texts"></section>
<h2>Config</h2><section id="config"></section>
<h2>Final metrics</h2><section id="metrics"></section>
<h2>Environment</h2><section id="environment"></section>
<script id="kiln-data" type="application/json">${scriptJson(data)}</script>
<script>${inlineScript(UPLOT_JS)}</script>
<script>${inlineScript(CLIENT_JS)}</script>
</body></html>
`;
}

// The report page's own script (plain browser JavaScript, inlined after uPlot). It reads the
// embedded data, draws one uPlot chart per metric group with every run overlaid, TensorBoard
// smoothing on a slider, image grids per validation step, and the config/environment tables.
export const CLIENT_JS = String.raw`
(function () {
  var data = JSON.parse(document.getElementById('kiln-data').textContent);
  var runs = data.runs;
  var palette = ['#e8590c', '#1c7ed6', '#2f9e44', '#ae3ec9', '#f08c00', '#0c8599', '#c2255c', '#5f3dc4'];
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function smooth(values, w) {
    var last = 0, n = 0;
    return values.map(function (y) {
      if (y === null || !isFinite(y)) return y;
      last = last * w + (1 - w) * y; n++;
      return last / (1 - Math.pow(w, n));
    });
  }
  // Axis labels that stay readable for learning rates (1e-6) and byte counts (1e9) alike.
  function fmt(v) {
    if (v === null || v === 0) return v === 0 ? '0' : '';
    var a = Math.abs(v);
    if (a >= 1e9) return +(v / 1e9).toPrecision(3) + 'G';
    if (a >= 1e6) return +(v / 1e6).toPrecision(3) + 'M';
    if (a >= 1e4) return +(v / 1e3).toPrecision(3) + 'k';
    if (a < 1e-2) return v.toExponential(1);
    return String(+v.toPrecision(4));
  }
  function groupOf(key) {
    if (/loss/i.test(key)) return 'loss';
    if (/(^|[\/_ ])lr($|[\/_ ])|learning.?rate/i.test(key)) return 'learning rate';
    if (/it\/s|per.?s(ec)?$|throughput/i.test(key)) return 'throughput';
    if (/mem|bytes/i.test(key)) return 'memory';
    return key;
  }
  var order = ['loss', 'learning rate', 'throughput', 'memory'];
  var groups = {};
  runs.forEach(function (run, ri) {
    Object.keys(run.series).forEach(function (key) {
      var g = groupOf(key);
      (groups[g] = groups[g] || []).push({ run: ri, key: key, s: run.series[key] });
    });
  });
  var names = Object.keys(groups).sort(function (a, b) {
    var ia = order.indexOf(a), ib = order.indexOf(b);
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : 1);
  });

  var charts = [];
  var slider = document.getElementById('smoothing');
  var chartsBox = document.getElementById('charts');
  var width = Math.max(320, Math.min(960, chartsBox.clientWidth || 960));
  names.forEach(function (g) {
    var members = groups[g];
    var steps = {};
    members.forEach(function (m) { m.s[0].forEach(function (x) { steps[x] = 1; }); });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var raw = members.map(function (m) {
      var at = {};
      m.s[0].forEach(function (x, i) { at[x] = m.s[1][i]; });
      return xs.map(function (x) { return x in at ? at[x] : null; });
    });
    var series = [{ label: 'step' }];
    members.forEach(function (m, i) {
      var c = palette[(m.run * 3 + i) % palette.length];
      var label = (runs.length > 1 ? runs[m.run].name + ' · ' : '') + m.key;
      series.push({ label: label + ' (raw)', stroke: c + '55', width: 1, spanGaps: true });
      series.push({ label: label, stroke: c, width: 2, spanGaps: true });
    });
    var box = el('div', { class: 'chart', 'data-group': g });
    box.appendChild(el('h3', {}, g));
    chartsBox.appendChild(box);
    var opts = {
      width: width, height: 260, series: series, scales: { x: { time: false } }, cursor: { drag: { x: true, y: false } },
      axes: [{}, { size: 64, values: function (u, splits) { return splits.map(fmt); } }],
    };
    var chart = { u: null, xs: xs, raw: raw, box: box };
    chart.build = function (w) {
      var cols = [xs];
      raw.forEach(function (r) { cols.push(r); cols.push(smooth(r, w)); });
      return cols;
    };
    chart.u = new uPlot(opts, chart.build(Number(slider.value)), box);
    box.setAttribute('data-points', String(raw.reduce(function (n, r) { return n + r.filter(function (v) { return v !== null; }).length; }, 0)));
    charts.push(chart);
  });
  slider.addEventListener('input', function () {
    document.getElementById('smoothing-value').textContent = Number(slider.value).toFixed(2);
    charts.forEach(function (c) { c.u.setData(c.build(Number(slider.value))); });
  });
  if (!names.length) chartsBox.appendChild(el('p', { class: 'empty' }, 'No scalars were logged.'));

  // Image grids: one block per run and tag, a row per step, so drift and overfitting show.
  var imgBox = document.getElementById('images');
  runs.forEach(function (run) {
    var tags = {};
    run.images.forEach(function (r) { (tags[r.tag] = tags[r.tag] || []).push(r); });
    Object.keys(tags).forEach(function (tag) {
      var block = el('div', { class: 'grid', 'data-tag': tag });
      block.appendChild(el('h3', {}, (runs.length > 1 ? run.name + ' · ' : '') + tag));
      var table = el('table');
      tags[tag].forEach(function (r) {
        var tr = el('tr');
        tr.appendChild(el('th', {}, 'step ' + r.step));
        r.images.forEach(function (im) {
          var td = el('td');
          var img = el('img', { src: im.src, width: String(Math.max(64, im.width)), alt: im.caption || tag + ' step ' + r.step });
          td.appendChild(img);
          if (im.caption) td.appendChild(el('div', { class: 'caption' }, im.caption));
          tr.appendChild(td);
        });
        table.appendChild(tr);
      });
      block.appendChild(table);
      imgBox.appendChild(block);
    });
  });
  if (runs.length > 1) {
    var finals = el('div', { class: 'grid', id: 'final-samples' });
    finals.appendChild(el('h3', {}, 'final samples, side by side'));
    var t = el('table');
    runs.forEach(function (run) {
      var last = run.images[run.images.length - 1];
      var tr = el('tr');
      tr.appendChild(el('th', {}, run.name + (last ? ' · ' + last.tag + ' step ' + last.step : '')));
      (last ? last.images : []).forEach(function (im) {
        var td = el('td'); td.appendChild(el('img', { src: im.src, width: String(Math.max(64, im.width)) })); tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    finals.appendChild(t);
    imgBox.appendChild(finals);
  }

  // Tables: a row per key, a column per run; rows whose values differ between runs are marked.
  function table(id, pick) {
    var box = document.getElementById(id);
    var keys = {};
    runs.forEach(function (r) { Object.keys(pick(r)).forEach(function (k) { keys[k] = 1; }); });
    var ks = Object.keys(keys).sort();
    if (!ks.length) { box.appendChild(el('p', { class: 'empty' }, 'Nothing logged.')); return; }
    var t = el('table', { class: 'kv' });
    var head = el('tr'); head.appendChild(el('th', {}, 'key'));
    runs.forEach(function (r) { head.appendChild(el('th', {}, r.name)); });
    t.appendChild(head);
    ks.forEach(function (k) {
      var cells = runs.map(function (r) { var v = pick(r)[k]; return v === undefined ? '—' : typeof v === 'string' ? v : JSON.stringify(v); });
      var tr = el('tr', cells.some(function (c) { return c !== cells[0]; }) ? { class: 'diff' } : {});
      tr.appendChild(el('td', {}, k));
      cells.forEach(function (c) { tr.appendChild(el('td', {}, c)); });
      t.appendChild(tr);
    });
    box.appendChild(t);
  }
  table('config', function (r) { return r.config; });
  table('metrics', function (r) { return r.metrics; });
  table('environment', function (r) { return r.environment; });

  var textBox = document.getElementById('texts');
  runs.forEach(function (run) {
    run.texts.forEach(function (x) {
      var p = el('p', {}); p.appendChild(el('b', {}, (runs.length > 1 ? run.name + ' · ' : '') + x.tag + ' @ ' + x.step + ': ')); p.appendChild(document.createTextNode(x.text)); textBox.appendChild(p);
    });
  });
  var warnBox = document.getElementById('warnings');
  runs.forEach(function (run) { run.warnings.forEach(function (w) { warnBox.appendChild(el('li', {}, run.name + ': ' + w)); }); });
  document.body.setAttribute('data-ready', '1');
})();
`;

"""The HTML page's one inline script (the page fetches nothing).

It renders what grows with the runs from the page's data
(:mod:`pyharness.reports.html_data`) and filters:

- the runs table: the index's rows that pass the filters, those that did
  not pass first, ``PAGE`` at a time ("show more");
- a run (``#run-ID``) or a grid cell (``#CELL``) opened: its runs'
  details, decompressed from their chunk, in the panel;
- a cause's list of runs, when it is unfolded;
- filters: each ``select[data-axis]`` and the search box hide the rows
  that do not match; every element with ``data-runs`` (a cause, a grid
  cell) dims or hides when none of its runs passes, and grid rows and
  columns with nothing left hide. The filters are kept in the page's query
  (``?verdict=fail&mode=protected&q=footer``), so a filtered view can be
  linked to.

Every string from the data reaches the page through ``textContent`` (or
an attribute set as a string), never as markup. A relative source link
is resolved against the directory the page was written in when the page
is opened from another one (a copied CI artifact), so it still leads to
the file.
"""

SCRIPT = r"""
(function () {
  'use strict';
  var PAGE = 500;
  var index = JSON.parse(document.getElementById('run-index').textContent);
  var runs = index.runs, axes = index.axes;
  var byId = {};
  runs.forEach(function (r, i) { byId[r[0]] = i; });
  var chunkSize = Number(document.body.dataset.chunk);
  var chunks = {}, loaded = {};
  document.querySelectorAll('script[type="application/x-pyharness-details"]').forEach(
    function (s) { chunks[s.dataset.first] = s; });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = text; }
    return e;
  }
  function detail(i) {
    var first = i - i % chunkSize;
    if (!loaded[first]) {
      var raw = atob(chunks[first].textContent.trim());
      var bytes = new Uint8Array(raw.length);
      for (var k = 0; k < raw.length; k++) { bytes[k] = raw.charCodeAt(k); }
      var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
      loaded[first] = new Response(stream).json();
    }
    return loaded[first].then(function (list) { return list[i - first]; });
  }
  var written = document.body.dataset.writtenIn;
  function sourceHref(href) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(href)) { return href; }
    var here = location.href.replace(/[?#].*$/, '').replace(/[^\/]*$/, '');
    if (written && location.protocol === 'file:' && here !== written) {
      return new URL(href, written).href;
    }
    return href;
  }
  function frameCell(cell) {
    var td = el('td');
    if (!cell) { return td; }
    td.appendChild(document.createTextNode(cell[0]));
    if (cell[1]) {
      var where = el(cell[2] ? 'a' : 'span', 'src', cell[1]);
      if (cell[2]) { where.setAttribute('href', sourceHref(cell[2])); }
      td.appendChild(document.createTextNode(' '));
      td.appendChild(where);
    }
    return td;
  }
  function number(n) { return el('td', null, n === null ? '' : String(n)); }
  function framesTable(rows) {
    if (!rows.length) { return el('p', null, 'No frames expected or printed.'); }
    var table = el('table', 'diff'), head = el('tr'), body = el('tbody');
    ['#', 'expected (oracle)', '#', 'actual (console)'].forEach(function (t) {
      head.appendChild(el('th', null, t));
    });
    table.appendChild(el('thead')).appendChild(head);
    rows.forEach(function (r) {
      var tr;
      if (r[0] === 'repeat') {
        tr = el('tr', r[1] + ' repeat');
        var td = tr.appendChild(el('td', null, 'the same, ' + r[2] + ' more times'));
        td.colSpan = 4;
      } else {
        tr = el('tr', r[0]);
        tr.appendChild(number(r[1]));
        tr.appendChild(frameCell(r[2]));
        tr.appendChild(number(r[3]));
        tr.appendChild(frameCell(r[4]));
      }
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }
  function article(d, open) {
    var a = el('article', 'run ' + d.verdict);
    a.id = 'run-' + d.id;
    var box = a.appendChild(el('details'));
    box.open = open;
    var summary = box.appendChild(el('summary'));
    summary.appendChild(el('b', null, d.id));
    summary.appendChild(el('span', 'badge ' + d.verdict, d.verdict.toUpperCase()));
    box.appendChild(el('p', null, d.facts));
    if (d.tree) { box.appendChild(el('p', null, d.tree)); }
    if (d.reasons.length) {
      var list = box.appendChild(el('ul', 'reasons'));
      d.reasons.forEach(function (r) { list.appendChild(el('li', null, r)); });
    }
    box.appendChild(el('p', null, 'reproduce: ')).appendChild(el('code', null, d.command));
    if (d.panic) {
      box.appendChild(el('p', null, 'expected panic line: ')).appendChild(
        el('code', null, d.panic));
    }
    d.notes.forEach(function (n) { box.appendChild(el('p', 'note', n)); });
    box.appendChild(el('div', 'frames')).appendChild(framesTable(d.frames));
    box.appendChild(el('pre', 'console', d.console));
    return a;
  }

  var panel = document.getElementById('detail');
  var panelTitle = document.getElementById('detail-title');
  var panelRuns = document.getElementById('detail-runs');
  var cells = {};
  document.querySelectorAll('td[data-cell]').forEach(function (td) { cells[td.dataset.cell] = td; });
  var shownKey = null;
  function show(key, title, indices) {
    panel.hidden = false;
    if (shownKey === key) { return; }
    shownKey = key;
    panelTitle.textContent = title;
    panelRuns.textContent = '';
    var order = indices.filter(function (i) { return runs[i][1][0] !== 'pass'; }).concat(
      indices.filter(function (i) { return runs[i][1][0] === 'pass'; }));
    Promise.all(order.map(detail)).then(function (details) {
      if (shownKey !== key) { return; }
      details.forEach(function (d, k) {
        panelRuns.appendChild(article(d, d.verdict !== 'pass' || k === 0));
      });
      panel.dataset.rendered = String(details.length);
    });
  }
  function route() {
    var hash = location.hash.slice(1);
    try { hash = decodeURIComponent(hash); } catch (e) {}
    if (hash.indexOf('run-') === 0 && byId[hash.slice(4)] !== undefined) {
      show(hash, hash.slice(4), [byId[hash.slice(4)]]);
    } else if (cells[hash]) {
      show(hash, cells[hash].dataset.title, cells[hash].dataset.runs.split(' ').map(Number));
    } else {
      panel.hidden = true;
      shownKey = null;
    }
  }
  window.addEventListener('hashchange', route);

  document.querySelectorAll('section.cause details.ids').forEach(function (box) {
    box.addEventListener('toggle', function () {
      var list = box.querySelector('ul.ids');
      if (!box.open || list.childElementCount) { return; }
      box.closest('section.cause').dataset.runs.split(' ').forEach(function (i) {
        var id = runs[Number(i)][0];
        var link = list.appendChild(el('li')).appendChild(el('a', null, id));
        link.setAttribute('href', '#run-' + encodeURIComponent(id));
      });
    });
  });

  var selects = Array.prototype.slice.call(document.querySelectorAll('select[data-axis]'));
  var search = document.getElementById('search');
  var shown = document.getElementById('shown');
  var grid = document.getElementById('grid-table');
  var body = document.getElementById('runs-body');
  var more = document.getElementById('more');
  var texts = [], matching = [], limit = PAGE;
  function text(i) {
    if (texts[i] === undefined) {
      var r = runs[i];
      texts[i] = [r[0], r[2]].concat(r[3]).join(' ').toLowerCase();
    }
    return texts[i];
  }
  function row(i) {
    var r = runs[i], tr = el('tr', 'run');
    tr.dataset.index = String(i);
    var badge = tr.appendChild(el('td')).appendChild(el('span', 'badge ' + r[1][0],
                                                        r[1][0].toUpperCase()));
    var link = tr.appendChild(el('td')).appendChild(el('a', null, r[0]));
    link.setAttribute('href', '#run-' + encodeURIComponent(r[0]));
    index.extra.forEach(function (a) { tr.appendChild(el('td', null, r[1][a])); });
    tr.appendChild(el('td', null, r[3].length ? r[3][0] : ''));
    return tr;
  }
  function renderRows() {
    body.textContent = '';
    matching.slice(0, limit).forEach(function (i) { body.appendChild(row(i)); });
    var rest = matching.length - limit;
    more.hidden = rest <= 0;
    more.textContent = 'show ' + Math.min(PAGE, rest) + ' more (' + rest + ' not shown)';
  }
  more.addEventListener('click', function () { limit += PAGE; renderRows(); });
  function apply() {
    var want = selects.filter(function (s) { return s.value !== ''; }).map(function (s) {
      return [axes.indexOf(s.dataset.axis), s.value];
    });
    var needle = search.value.trim().toLowerCase();
    var visible = {};
    matching = index.order.filter(function (i) {
      var values = runs[i][1];
      var ok = want.every(function (w) { return values[w[0]] === w[1]; })
        && (!needle || text(i).indexOf(needle) >= 0);
      if (ok) { visible[i] = true; }
      return ok;
    });
    limit = PAGE;
    renderRows();
    shown.textContent = matching.length + ' of ' + runs.length + ' runs';
    document.querySelectorAll('[data-runs]').forEach(function (e) {
      var n = e.dataset.runs.split(' ').filter(function (i) { return visible[i]; }).length;
      e.classList.toggle('dim', n === 0);
      if (e.classList.contains('cause')) { e.hidden = n === 0; }
    });
    if (!grid) { return; }
    var rows = Array.prototype.slice.call(grid.tBodies[0].rows);
    rows.forEach(function (r) { r.hidden = !r.querySelector('td[data-runs]:not(.dim)'); });
    var heads = grid.tHead.rows[0].cells;
    for (var c = 1; c < heads.length; c++) {
      var used = rows.some(function (r) {
        var cell = r.cells[c];
        return !r.hidden && cell && cell.dataset.runs !== undefined && !cell.classList.contains('dim');
      });
      heads[c].hidden = !used;
      rows.forEach(function (r) { if (r.cells[c]) { r.cells[c].hidden = !used; } });
    }
  }
  function remember() {
    var query = selects.filter(function (s) { return s.value !== ''; }).map(function (s) {
      return encodeURIComponent(s.dataset.axis) + '=' + encodeURIComponent(s.value);
    });
    if (search.value) { query.push('q=' + encodeURIComponent(search.value)); }
    try { history.replaceState(null, '', '?' + query.join('&') + location.hash); } catch (e) {}
  }
  new URLSearchParams(location.search).forEach(function (value, key) {
    if (key === 'q') { search.value = value; }
    selects.forEach(function (s) { if (s.dataset.axis === key) { s.value = value; } });
  });
  selects.forEach(function (s) { s.addEventListener('change', function () { apply(); remember(); }); });
  search.addEventListener('input', function () { apply(); remember(); });
  document.getElementById('reset').addEventListener('click', function () {
    selects.forEach(function (s) { s.value = ''; });
    search.value = '';
    apply();
    remember();
  });
  apply();
  route();
})();
"""

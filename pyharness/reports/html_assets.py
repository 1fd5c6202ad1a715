"""The HTML page's style and its one inline script (the page fetches nothing).

The script only filters: each run row carries its axes as ``data-*``
attributes and its id and reasons as ``data-text``; every element with
``data-runs`` (a cause, a grid cell) dims or hides when none of its runs
passes the filters, and grid rows and columns with nothing left hide. The
filters are kept in the page's query (``?verdict=fail&mode=protected&q=footer``),
so a filtered view can be linked to. Without scripts the page shows
everything.
"""

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em}
.counts{font-size:1.1em}.counts.bad{color:#b42318}.counts.good{color:#116329}
table{border-collapse:collapse}th,td{padding:3px 8px;text-align:left}
#filters{position:sticky;top:0;z-index:5;background:#fafafa;padding:.5em 0;
 border-bottom:1px solid #d0d7de;display:flex;flex-wrap:wrap;gap:.4em 1em;align-items:center}
#filters label{white-space:nowrap}#filters select,#filters input{font:inherit;max-width:16em}
#shown{color:#57606a}
section.cause{border-left:4px solid #cf222e;background:#fff;margin:.6em 0;padding:.3em .8em}
section.cause.error{border-left-color:#bf8700}
.cause h3{font-size:1em;margin:.2em 0;overflow-wrap:anywhere}
.cause .globs{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
.cause ul.ids{columns:3 20em;margin:.3em 0;font-size:12px}
table.trees{background:#fff}table.trees td{border-bottom:1px solid #eaeef2;
 overflow-wrap:anywhere;vertical-align:top}
table.runs{table-layout:fixed;width:100%;background:#fff}
table.runs td,table.runs th{border-bottom:1px solid #eaeef2;overflow-wrap:anywhere;
 vertical-align:top;font-size:13px}
table.runs col.verdict{width:5em}table.runs col.id{width:24em}
table.grid{table-layout:fixed;width:100%}
table.grid th{background:#eaeef2;border:1px solid #d0d7de;font-weight:600}
table.grid col.config{width:19em}
table.grid tbody th{font:12px ui-monospace,monospace;overflow-wrap:anywhere}
table.grid thead th.scenario{writing-mode:vertical-rl;transform:rotate(180deg);
 vertical-align:bottom;padding:8px 2px;font-weight:500;font-size:12px;white-space:nowrap}
table.grid td{border:1px solid #d0d7de;padding:0;white-space:nowrap;overflow:hidden;
 text-overflow:ellipsis}
table.grid td a{display:block;padding:4px 2px;color:inherit;text-decoration:none;
 font-family:ui-monospace,monospace;font-size:12px;text-align:center}
td.pass{background:#a6e3a1}td.fail{background:#f38b8b}td.error{background:#f9d27a}
td.none{background:#eee;color:#888;text-align:center}table.grid td a:hover{outline:2px solid #1b1f24}
table.grid td.dim{opacity:.25}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid #d0d7de}
.detail{display:none}
.detail:target,.detail:has(:target){display:block;position:fixed;inset:3vh 3vw;overflow:auto;
 background:#fff;border:1px solid #8c959f;box-shadow:0 8px 40px rgba(0,0,0,.35);
 padding:1em 1.5em;z-index:10}
.close{float:right;font-size:1.2em;text-decoration:none}
article.run{border-top:1px solid #d0d7de;padding:.6em 0}summary{cursor:pointer}
div.frames{max-height:28em;overflow:auto;margin:.5em 0}
.badge{font-size:.8em;padding:1px 6px;border-radius:3px;margin-left:.5em;color:#fff}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}.badge.error{background:#bf8700}
code,pre{font-family:ui-monospace,monospace;font-size:12px}
code{overflow-wrap:anywhere}
pre.console{background:#0d1117;color:#e6edf3;padding:.6em;max-height:24em;overflow:auto}
table.diff{width:100%}
table.diff td{font-family:ui-monospace,monospace;font-size:12px;border-bottom:1px solid #eee;
 vertical-align:top}
table.diff tr.differ td{background:#ffebe9}table.diff tr.missing td,
table.diff tr.extra td{background:#fff8c5}
table.diff tr.repeat td{color:#57606a;font-style:italic}
.src{color:#57606a;margin-left:.6em;display:inline-block;white-space:nowrap}
a.src{color:#0969da}
ul.reasons{margin:.3em 0;color:#b42318}
table.numbers td,table.numbers th{border:1px solid #d0d7de}
.ok{color:#116329}.bad{color:#b42318}tspan.ok{fill:#116329}tspan.bad{fill:#b42318}
svg{max-width:100%;height:auto}
"""

SCRIPT = """
(function () {
  var runs = Array.prototype.slice.call(document.querySelectorAll('tr.run'));
  var selects = Array.prototype.slice.call(document.querySelectorAll('select[data-axis]'));
  var search = document.getElementById('search');
  var shown = document.getElementById('shown');
  var grid = document.getElementById('grid-table');
  function apply() {
    var want = selects.filter(function (s) { return s.value !== ''; });
    var text = search.value.trim().toLowerCase();
    var visible = {}, count = 0;
    runs.forEach(function (row) {
      var ok = want.every(function (s) { return row.getAttribute('data-' + s.dataset.axis) === s.value; })
        && (!text || row.dataset.text.indexOf(text) >= 0);
      row.hidden = !ok;
      if (ok) { visible[row.dataset.index] = true; count++; }
    });
    shown.textContent = count + ' of ' + runs.length + ' runs';
    document.querySelectorAll('[data-runs]').forEach(function (el) {
      var n = el.dataset.runs.split(' ').filter(function (i) { return visible[i]; }).length;
      el.classList.toggle('dim', n === 0);
      if (el.classList.contains('cause')) { el.hidden = n === 0; }
    });
    if (!grid) { return; }
    var rows = Array.prototype.slice.call(grid.tBodies[0].rows);
    rows.forEach(function (row) {
      row.hidden = !row.querySelector('td[data-runs]:not(.dim)');
    });
    var heads = grid.tHead.rows[0].cells;
    for (var c = 1; c < heads.length; c++) {
      var used = rows.some(function (row) {
        var cell = row.cells[c];
        return !row.hidden && cell && cell.dataset.runs !== undefined && !cell.classList.contains('dim');
      });
      heads[c].hidden = !used;
      rows.forEach(function (row) { if (row.cells[c]) { row.cells[c].hidden = !used; } });
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
  });
  apply();
})();
"""

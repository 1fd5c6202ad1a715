"""The HTML page's style (its script: :mod:`pyharness.reports.html_script`)."""

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
.detail[hidden]{display:none}
.detail{display:block;position:fixed;inset:3vh 3vw;overflow:auto;
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

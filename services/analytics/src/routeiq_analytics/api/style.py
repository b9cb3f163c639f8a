"""The dashboard's stylesheet, inlined into the page (no external CSS, font or CDN)."""

STYLE = """
:root{--bg:#f5f6f8;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--good:#1a7f37;
--bad:#b42318;--accent:#4c78a8}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap;padding:16px 28px;
background:#161b26;color:#fff}
header h1{font-size:18px;margin:0;font-weight:600;letter-spacing:.2px}
header .meta{color:#aab2c0;font-size:12px}
nav.windows{margin-left:auto;display:flex;gap:6px}
nav.windows a{color:#cfd6e3;text-decoration:none;padding:4px 12px;border-radius:999px;
border:1px solid #3a4353;font-size:13px}
nav.windows a.active{background:#fff;color:#161b26;border-color:#fff}
main{padding:20px 28px 40px;max-width:1320px;margin:0 auto}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px}
.kpi{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.kpi .name{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.kpi .value{font-size:20px;font-weight:650;margin-top:2px;font-variant-numeric:tabular-nums}
.kpi .sub{color:var(--muted);font-size:12px;margin-top:2px}
.kpi .good{color:var(--good)} .kpi .bad{color:var(--bad)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px;
margin-top:14px}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px}
.panel h2{font-size:14px;margin:0 0 2px;font-weight:600}
.panel .hint{color:var(--muted);font-size:12px;margin:0 0 6px}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:var(--muted);
margin-bottom:4px}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
vertical-align:-1px}
svg.chart{width:100%;height:auto;display:block}
svg .grid{stroke:var(--line);stroke-width:1}
svg .axis,svg .note,svg .label{fill:var(--muted);font-size:11px}
svg .label{fill:var(--ink);font-size:12px}
svg .track{fill:#f0f2f5}
svg .empty{fill:var(--muted);font-size:13px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{text-align:right;padding:6px 8px;border-bottom:1px solid var(--line)}
th:first-child,td:first-child{text-align:left}
th{color:var(--muted);font-weight:500;font-size:12px}
.swatch{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:6px}
footer{color:var(--muted);font-size:12px;margin-top:18px}
"""

"""The report's stylesheet (inline in the page; nothing is fetched)."""

CSS = """
:root { --fg:#1d2733; --muted:#6b7785; --line:#d9dee4; --bg:#fafbfc; --card:#fff; --bad:#C0392B; --ok:#1E8449; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
header { padding:18px 28px; background:#13222f; color:#fff; }
header h1 { margin:0 0 4px; font-size:22px; }
header .sub { color:#b8c4cf; font-size:13px; }
main { padding:12px 28px 40px; max-width:1000px; }
h2 { margin:28px 0 6px; font-size:19px; border-bottom:2px solid var(--line); padding-bottom:4px; }
h3 { margin:20px 0 6px; font-size:15px; }
nav a { margin-right:14px; color:#9fd3ff; }
.tiles { display:flex; flex-wrap:wrap; gap:10px; margin:10px 0; }
.tile { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:8px 12px; min-width:130px; }
.tile .v { font-size:20px; font-weight:600; }
.tile .k { color:var(--muted); font-size:12px; }
.tile.bad .v { color:var(--bad); }
.grid2 { display:grid; grid-template-columns: repeat(2, 460px); gap:12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:6px; }
.badge { display:inline-block; padding:1px 7px; border-radius:9px; font-size:12px; font-weight:600; }
.badge.drift { background:#fdecea; color:var(--bad); }
.badge.ok { background:#e9f7ef; color:var(--ok); }
.badge.na { background:#eef0f2; color:var(--muted); }
.feat .meta { font-size:12px; color:var(--muted); padding:0 6px 4px; }
.feat .quality { color:var(--bad); margin-top:2px; }
table { border-collapse:collapse; width:100%; font-size:13px; background:var(--card); }
th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#f0f3f6; }
td.firing { color:var(--bad); font-weight:600; }
td.resolved { color:var(--ok); }
p.note { color:var(--muted); margin:4px 0; }
svg.chart { display:block; }
svg .ctitle { font-size:13px; font-weight:600; fill:#1d2733; }
svg .tick { font-size:10px; fill:#55606c; }
svg .legend { font-size:11px; fill:#1d2733; }
svg .onbar { font-size:10px; font-weight:600; fill:#fff; }
svg .muted { font-size:11px; fill:#8a96a3; }
svg .frame { fill:none; stroke:#c9d0d8; }
svg .grid { stroke:#edf0f3; }
svg .threshold { stroke:#C0392B; stroke-dasharray:5 4; stroke-width:1.5; }
svg .event { stroke:#8e44ad; stroke-dasharray:3 3; stroke-width:1.5; }
svg .alarm { fill:none; stroke:#C0392B; stroke-width:2; }
footer { color:var(--muted); font-size:12px; padding:10px 28px 30px; }
"""

package results

// reportHTML is the page template. Everything the page needs is inline; the
// only dynamic markup is SVG laid out in Go, and html/template escapes all
// text and attribute values.
const reportHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222; background: #fafafa; }
header { background: #20303f; color: #fff; padding: 14px 24px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header .sub { color: #b8c4cf; font-size: 13px; }
main { padding: 12px 24px 40px; max-width: 1500px; }
nav a { margin-right: 14px; color: #2a5d8a; }
.banner { padding: 10px 14px; border-radius: 6px; font-weight: 600; margin: 12px 0; font-size: 15px; }
.banner.ok { background: #e3f4e1; color: #1d5e1a; border: 1px solid #9fd29a; }
.banner.bad { background: #fbe3e3; color: #8a1414; border: 1px solid #eaa0a0; }
.banner.warn { background: #fff4d6; color: #7a5600; border: 1px solid #f0d080; }
ul.failures { color: #8a1414; margin-top: 0; }
h2 { font-size: 17px; margin: 28px 0 6px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 16px 0 4px; }
.note { color: #666; font-size: 13px; margin: 2px 0 10px; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr)); gap: 2px 24px; }
.facts div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.facts b { display: inline-block; min-width: 100px; color: #555; font-weight: 500; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; margin-bottom: 8px; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; font-weight: 600; }
td.l, th.l { text-align: left; }
td.pass { color: #1d5e1a; font-weight: 600; }
td.fail { color: #b01010; font-weight: 700; }
td.skipped { color: #888; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(450px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 8px 8px 4px; }
figcaption { font-size: 13px; font-weight: 600; margin: 0 0 2px 4px; }
svg text { font-size: 10.5px; fill: #444; font-family: system-ui, sans-serif; }
svg .grid { stroke: #ececec; }
svg .axis { stroke: #999; }
svg .line { fill: none; stroke-width: 2; }
svg .dashed { stroke-dasharray: 5 3; stroke-width: 1.5; }
svg .err { stroke: #222; stroke-width: 1.5; fill: none; }
.legend { font-size: 11.5px; margin: 0 4px 4px; }
table.answer { font-size: 13.5px; }
table.answer tr.first td { border-top: 2px solid #ccc; }
table.answer td.best { font-weight: 700; }
table.answer .dir { color: #888; font-size: 11.5px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
td.bars, th.bars { width: 320px; }
.track { position: relative; height: 12px; background: #f2f2f2; border-radius: 2px; }
.track .fill { position: absolute; left: 0; top: 2px; height: 8px; border-radius: 2px; opacity: 0.85; }
.track .err { position: absolute; top: 5px; height: 2px; background: #222; }
.legend span { margin-right: 12px; white-space: nowrap; }
</style>
</head>
<body>
<header>
<h1>{{.Title}}</h1>
<div class="sub">seed {{.Run.Seed}} · {{len .Run.Cells}} cell(s) · generated {{.Generated}}</div>
</header>
<main>
<div class="banner {{.Status.Class}}" id="status">{{.Status.Text}}</div>
{{if .Failures}}<ul class="failures">{{range .Failures}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Run.Warnings}}<ul class="note">{{range .Run.Warnings}}<li>{{.}}</li>{{end}}</ul>{{end}}
<nav><a href="#answer">Which engine, by how much</a>{{range .Sections}}<a href="#{{.ID}}">{{.Title}}</a>{{end}}<a href="#summary">All metrics</a><a href="#machine">Machine</a></nav>

<h2 id="answer">Which engine, by how much</h2>
<p class="note">Per phase, its headline figures per engine: the median over repeats, the range (min–max) as the error bar, and the difference from the best.{{with .Run.Machine.GitRevision}} Revision {{.}}.{{end}}</p>
{{if .Answers}}<table class="answer">
<tr><th class="l">phase</th><th class="l">metric</th><th class="l">engine</th><th>median</th><th>min–max</th><th>vs best</th><th class="l bars"></th></tr>
{{range .Answers}}{{$row := .}}{{range $i, $c := .Cells}}<tr{{if eq $i 0}} class="first"{{end}}><td class="l">{{if eq $i 0}}{{$row.Phase}}{{end}}</td><td class="l">{{if eq $i 0}}{{$row.Metric}} <span class="dir">{{$row.Direction}}</span>{{end}}</td><td class="l"><span class="swatch" style="background: {{$c.Color}}"></span>{{$c.Label}}</td><td title="{{$c.Title}}"{{if $c.Best}} class="best"{{end}}>{{$c.Median}}</td><td>{{$c.Range}}</td><td>{{$c.Vs}}</td><td class="l bars" title="{{$c.Title}}"><div class="track"><div class="fill" style="width: {{$c.Bar}}; background: {{$c.Color}}"></div>{{if $c.Range}}<div class="err" style="left: {{$c.ErrLo}}; width: {{$c.ErrSpan}}"></div>{{end}}</div></td></tr>
{{end}}{{end}}</table>
{{else}}<p class="note">No phase finished.</p>{{end}}

{{range .Sections}}
<h2 id="{{.ID}}">{{.Title}}</h2>
<p class="note">{{.Note}}</p>
{{if .Charts}}<div class="charts">
{{range .Charts}}{{template "chart" .}}{{end}}
</div>{{end}}
{{end}}

<h2 id="machine">Machine</h2>
<div class="facts">{{range .Facts}}<div><b>{{index . 0}}</b> {{index . 1}}</div>{{end}}</div>
{{if .Dirs}}
<h3>Data directories</h3>
<table><tr><th class="l">label</th><th class="l">path</th><th class="l">filesystem</th><th class="l">device</th><th>free</th></tr>
{{range $i, $d := .Dirs}}<tr><td class="l">{{if $d.Label}}{{$d.Label}}{{else}}d{{$i}}{{end}}</td><td class="l">{{$d.Path}}</td><td class="l">{{$d.Filesystem}}</td><td class="l">{{$d.Device}}</td><td>{{bytes $d.FreeBytes}}</td></tr>
{{end}}</table>
{{end}}

<h2 id="summary">All metrics</h2>
{{range .Summaries}}
<h3>phase {{.Name}}</h3>
<div class="scroll"><table>
<tr><th class="l">engine</th><th class="l">dir</th><th>cores</th><th>repeat</th><th class="l">verify</th>{{range .Metrics}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><td class="l">{{.Engine}}</td><td class="l">{{.Dir}}</td><td>{{.Cores}}</td><td>{{.Repeat}}</td><td class="l {{.Verify}}" title="{{.Detail}}">{{.Verify}}</td>{{range .Values}}<td>{{.}}</td>{{end}}</tr>
{{end}}</table></div>
{{else}}<p class="note">No phase finished.</p>
{{end}}
</main>
</body>
</html>
{{define "chart"}}<figure>
<figcaption>{{.Title}}</figcaption>
<svg data-chart="{{.Kind}}" viewBox="0 0 {{.W}} {{.H}}" width="100%" role="img" aria-label="{{.Title}}">
{{range .YTicks}}<line class="grid" x1="{{f1 $.X0}}" x2="{{f1 $.X1}}" y1="{{f1 .Pos}}" y2="{{f1 .Pos}}"/><text x="{{f1 $.X0}}" dx="-4" y="{{f1 .Pos}}" dy="3.5" text-anchor="end">{{.Label}}</text>
{{end}}{{range .XTicks}}<text x="{{f1 .Pos}}" y="{{f1 $.Y1}}" dy="14" text-anchor="middle">{{.Label}}</text>
{{end}}<line class="axis" x1="{{f1 .X0}}" x2="{{f1 .X1}}" y1="{{f1 .Y1}}" y2="{{f1 .Y1}}"/>
<line class="axis" x1="{{f1 .X0}}" x2="{{f1 .X0}}" y1="{{f1 .Y0}}" y2="{{f1 .Y1}}"/>
<text transform="translate(12 {{f1 .Y0}}) rotate(-90)" text-anchor="end">{{.YLabel}}</text>
{{if .XLabel}}<text x="{{f1 .X1}}" y="{{.H}}" dy="-4" text-anchor="end">{{.XLabel}}</text>{{end}}
{{range .Bars}}<rect class="bar" x="{{f1 .X}}" y="{{f1 .Y}}" width="{{f1 .W}}" height="{{f1 .H}}" fill="{{.Color}}"><title>{{.Label}}: {{.Value}} ({{.Exact}})</title></rect>
{{if .Err}}<path class="err" d="M{{f1 .CapX0}},{{f1 .ErrLo}} H{{f1 .CapX1}} M{{f1 .LabelX}},{{f1 .ErrLo}} V{{f1 .ErrHi}} M{{f1 .CapX0}},{{f1 .ErrHi}} H{{f1 .CapX1}}"><title>{{.Label}}: range {{.Exact}}</title></path>{{end}}
<text x="{{f1 .LabelX}}" y="{{f1 .TextY}}" dy="-3" text-anchor="middle">{{.Value}}</text>
<text x="{{f1 .LabelX}}" y="{{f1 .LabelY}}" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Lines}}<path class="line{{if .Dashed}} dashed{{end}}" d="{{.D}}" stroke="{{.Color}}"><title>{{.Label}}</title></path>
{{$c := .Color}}{{range .Points}}<circle cx="{{f1 .X}}" cy="{{f1 .Y}}" r="2.5" fill="{{$c}}"><title>{{.Title}}</title></circle>{{end}}
{{end}}</svg>
{{if .Lines}}<div class="legend">{{range .Legend}}<span><svg width="22" height="8" aria-hidden="true"><line x1="0" x2="22" y1="4" y2="4" stroke="{{.Color}}" stroke-width="{{if .Dashed}}1.5{{else}}3{{end}}"{{if .Dashed}} stroke-dasharray="5 3"{{end}}/></svg> {{.Label}}</span>{{end}}</div>{{end}}
</figure>
{{end}}`

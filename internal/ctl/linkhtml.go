package ctl

import (
	"bytes"
	"encoding/xml"
	"html/template"
	"io"
	"strconv"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// labPage is one self-contained HTML file: the picture inline, its style,
// and tables of the links and pods; nothing is fetched from anywhere. The
// template escapes every name; the picture is encoding/xml's output,
// escaped as it was written.
var labPage = template.Must(template.New("lab").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ratchet lab: {{len .Pods}} pods, {{len .Links}} links</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #263238; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #cfd8dc; padding: 0.25em 0.6em; text-align: left; font-family: monospace; white-space: nowrap; }
td.n { text-align: right; }
th { background: #eceff1; }
.swatch { display: inline-block; width: 1.6em; height: 0.3em; vertical-align: middle; margin-right: 0.4em; }
figure { margin: 0; overflow: auto; }
</style>
</head>
<body>
<h1>ratchet lab</h1>
<p>{{len .Pods}} pods registered on this node, {{len .Links}} links; hover over a link or a pod for its counters and settings.</p>
<figure>
{{.Picture}}
</figure>
<h2>Links</h2>
<table class="links">
<thead><tr><th>state</th><th>end A</th><th>end B</th><th>settings</th><th>bytes→A</th><th>pkts→A</th><th>drops→A</th><th>errs→A</th><th>bytes→B</th><th>pkts→B</th><th>drops→B</th><th>errs→B</th><th>carrier</th></tr></thead>
<tbody>
{{range .Links}}<tr class="link" data-state="{{.State}}"><td><span class="swatch" style="background: {{.Colour}}"></span>{{.State}}</td><td>{{.A}}</td><td>{{.B}}</td><td>{{.Settings}}</td>{{range .Counters}}<td class="n">{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
<h2>Pods</h2>
<table class="pods">
<thead><tr><th>pod</th><th>netns</th><th>attachment</th></tr></thead>
<tbody>
{{range .Pods}}<tr class="pod"><td>{{.Pod}}</td><td>{{.Netns}}</td><td>{{.Attachment}}</td></tr>
{{end}}</tbody>
</table>
</body>
</html>
`))

type pageLink struct {
	State, A, B, Settings string
	// Colour is one of stateColour's constants (html/template checks a
	// CSS value anyway).
	Colour   string
	Counters []string
}

type pagePod struct{ Pod, Netns, Attachment string }

// printHTML writes the lab as one HTML page.
func printHTML(w io.Writer, pods []*store.PodRecord, views []podlink.LinkView) error {
	pic := layoutLab(pods, views)
	var svg bytes.Buffer
	enc := xml.NewEncoder(&svg)
	if err := enc.Encode(svgTree(pic, false)); err != nil {
		return err
	}
	data := struct {
		Picture template.HTML
		Links   []pageLink
		Pods    []pagePod
	}{
		// encoding/xml escaped every name and attribute it wrote; HTML
		// parses the <svg> element as SVG without a namespace.
		Picture: template.HTML(svg.String()),
		Links:   []pageLink{},
		Pods:    []pagePod{},
	}
	for _, l := range pic.Links {
		v := l.View
		settings := "-"
		if !v.Settings.IsZero() || v.Added {
			settings = settingsColumn(store.LinkRecord{Ends: v.Ends, Settings: v.Settings, Added: v.Added})
		}
		data.Links = append(data.Links, pageLink{State: shown(string(v.State)), A: endName(v.Ends[0]), B: endName(v.Ends[1]),
			Settings: settings, Colour: colourOf(v.State), Counters: counterCells(v.Stats)})
	}
	for _, p := range pic.Pods {
		if p.Rec != nil {
			data.Pods = append(data.Pods, pagePod{Pod: shown(p.Rec.Pod), Netns: shown(p.Rec.Netns), Attachment: shown(p.Rec.Attachment.String())})
		}
	}
	return labPage.Execute(w, data)
}

// counterCells are a link's counters in the order of the table's
// columns, "-" where this node does not count them.
func counterCells(s *podlink.LinkStats) []string {
	var cells []string
	for i := range 2 {
		var t *podlink.Traffic
		if s != nil {
			t = s.Toward[i]
		}
		if t == nil {
			cells = append(cells, "-", "-", "-", "-")
			continue
		}
		cells = append(cells, strconv.FormatUint(t.Bytes, 10), strconv.FormatUint(t.Packets, 10),
			strconv.FormatUint(t.Drops, 10), strconv.FormatUint(t.Errors, 10))
	}
	c := carrierText(s)
	if c == "" {
		c = "-/-"
	}
	return append(cells, c)
}

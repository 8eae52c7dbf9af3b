package ctl

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// `ratchetctl links --svg` and `--html` draw the node's lab without
// Graphviz or a server. The layout is a circle of the pods sorted by name:
// deterministic, no two pods overlap (the circle grows with the widest
// pod), and every link shows as a chord, parallel links as distinct
// curves. The README's "hand-written" list says why no library lays it
// out. Everything is written through encoding/xml (html/template for the
// page), so a name from the store can neither forge markup nor reach the
// picture with a control character (names are shown Go-quoted as in the
// table, see shown).

// Geometry of the picture, in SVG user units (pixels at 100 %).
const (
	podHeight    = 28.0
	podPad       = 10.0 // between a pod's name and its box's side
	charWidth    = 7.5  // of the 12px monospace font the names use
	podGap       = 48.0 // at least this much between neighbouring pods' boxes, for the links' labels
	minRadius    = 90.0
	parallelStep = 26.0 // between the apexes of parallel links of one pair of pods
	loopReach    = 64.0 // how far a link from a pod to itself reaches out
	margin       = 24.0
	legendHeight = 34.0
	maxNameRunes = 40 // longer names are cut with "…" in the box; the tooltip has them whole
)

// stateColour colours each state as the table names it, one colour per
// state so the picture needs no text to tell them apart (the legend
// names them).
var stateColour = map[podlink.State]string{
	podlink.StateUp:       "#2e7d32",
	podlink.StatePending:  "#9e9e9e",
	podlink.StateParked:   "#ef6c00",
	podlink.StatePulled:   "#d81b60",
	podlink.StateBroken:   "#b71c1c",
	podlink.StateImpaired: "#7b1fa2",
	podlink.StateRemote:   "#1565c0",
}

// stateDash draws the states whose cable does not carry frames as dashes.
var stateDash = map[podlink.State]string{
	podlink.StatePending: "4 4",
	podlink.StateParked:  "2 4",
	podlink.StatePulled:  "8 4",
}

// legendStates is the legend's order: working, then waiting, then wrong.
var legendStates = []podlink.State{podlink.StateUp, podlink.StateImpaired, podlink.StateRemote,
	podlink.StatePending, podlink.StateParked, podlink.StatePulled, podlink.StateBroken}

// colourOf is a state's colour; a state this build does not know is black.
func colourOf(s podlink.State) string {
	if c, ok := stateColour[s]; ok {
		return c
	}
	return "#000000"
}

type point struct{ X, Y float64 }

// labPod is one pod's box, centred on its point.
type labPod struct {
	Name string
	At   point
	W, H float64
	// Rec is the pod's record on this node; nil: the pod is known only
	// as a link's end (gone, not yet added, or on another node).
	Rec *store.PodRecord
}

// labLink is one link's curve: Path is its SVG path, Labels where each
// end's interface name is written (outside the boxes).
type labLink struct {
	View   podlink.LinkView
	Ends   [2]int // indexes into labPicture.Pods
	Path   string
	Labels [2]point
}

// labPicture is the lab laid out.
type labPicture struct {
	Width, Height float64
	Pods          []labPod
	Links         []labLink
}

// displayName is a name as the picture writes it in a box: Go-quoted when
// it holds a non-printable character, cut to maxNameRunes.
func displayName(s string) string {
	s = shown(s)
	if utf8.RuneCountInString(s) > maxNameRunes {
		r := []rune(s)
		s = string(r[:maxNameRunes-1]) + "…"
	}
	return s
}

// layoutLab places the pods and links: the pods registered here and every
// pod a link names, on a circle in name order from the top, clockwise.
// The same pods and links give the same picture whatever their order.
func layoutLab(pods []*store.PodRecord, views []podlink.LinkView) labPicture {
	byName := map[string]*labPod{}
	add := func(name string) *labPod {
		p, ok := byName[name]
		if !ok {
			p = &labPod{Name: name, H: podHeight}
			p.W = float64(utf8.RuneCountInString(displayName(name)))*charWidth + 2*podPad
			byName[name] = p
		}
		return p
	}
	for _, r := range pods {
		p := add(r.Pod)
		p.Rec = r
	}
	for _, v := range views {
		add(v.Ends[0].Pod)
		add(v.Ends[1].Pod)
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)
	pic := labPicture{}
	index := map[string]int{}
	maxW := 0.0
	for i, n := range names {
		index[n] = i
		pic.Pods = append(pic.Pods, *byName[n])
		maxW = max(maxW, byName[n].W)
	}

	// Each box lies within a circle of its half diagonal: neighbours on
	// the big circle whose centres are a diagonal plus a gap apart cannot
	// overlap, nor can any two pods farther round.
	n := len(names)
	diag := math.Hypot(maxW, podHeight)
	radius := 0.0
	if n > 1 {
		radius = max(minRadius, (diag+podGap)/(2*math.Sin(math.Pi/float64(n))))
	}
	// Links from a pod to itself loop outward: leave room for the
	// largest number of them on one pod.
	loops := map[int]int{}
	for _, v := range views {
		if v.Ends[0].Pod == v.Ends[1].Pod {
			loops[index[v.Ends[0].Pod]]++
		}
	}
	maxLoops := 0
	for _, c := range loops {
		maxLoops = max(maxLoops, c)
	}
	reach := 0.0
	if maxLoops > 0 {
		reach = loopReach + parallelStep*float64(maxLoops) + 16
	}
	cx := margin + reach + radius + maxW/2
	cy := margin + reach + radius + podHeight/2
	pic.Width = 2 * cx
	pic.Height = 2*cy + legendHeight
	pic.Width = max(pic.Width, legendWidth())
	cx = pic.Width / 2
	for i := range pic.Pods {
		a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(max(n, 1))
		pic.Pods[i].At = point{round1(cx + radius*math.Cos(a)), round1(cy + radius*math.Sin(a))}
	}

	// Parallel links of one pair of pods bend apart, in a stable order.
	order := make([]int, len(views))
	for i := range order {
		order[i] = i
	}
	pairOf := func(v podlink.LinkView) [2]int {
		a, b := index[v.Ends[0].Pod], index[v.Ends[1].Pod]
		return [2]int{min(a, b), max(a, b)}
	}
	slices.SortStableFunc(order, func(i, j int) int {
		pi, pj := pairOf(views[i]), pairOf(views[j])
		if c := slices.Compare(pi[:], pj[:]); c != 0 {
			return c
		}
		return strings.Compare(linkKey(views[i]), linkKey(views[j]))
	})
	groups := map[[2]int][]int{}
	for _, i := range order {
		p := pairOf(views[i])
		groups[p] = append(groups[p], i)
	}
	centre := point{cx, cy}
	for _, i := range order {
		v := views[i]
		p := pairOf(v)
		group := groups[p]
		k := slices.Index(group, i)
		l := labLink{View: v, Ends: [2]int{index[v.Ends[0].Pod], index[v.Ends[1].Pod]}}
		if p[0] == p[1] {
			l.Path, l.Labels = loopCurve(pic.Pods[p[0]], centre, k)
		} else {
			offset := (float64(k) - float64(len(group)-1)/2) * parallelStep
			path, labels := pairCurve(pic.Pods[p[0]], pic.Pods[p[1]], offset)
			l.Path = path
			l.Labels = labels
			if l.Ends[0] != p[0] { // drawn from the pair's first pod: swap the labels to the link's ends
				l.Labels[0], l.Labels[1] = labels[1], labels[0]
			}
			// Parallel curves leave a box close together: each one's
			// labels move to its outer side, clear of its neighbour's.
			if offset != 0 {
				a, b := pic.Pods[p[0]].At, pic.Pods[p[1]].At
				d := math.Hypot(b.X-a.X, b.Y-a.Y)
				nx, ny := -(b.Y-a.Y)/d, (b.X-a.X)/d
				for e := range l.Labels {
					shift := math.Copysign(float64(utf8.RuneCountInString(displayName(v.Ends[e].IfName)))*charWidth/2+4, offset)
					l.Labels[e] = point{round1(l.Labels[e].X + nx*shift), round1(l.Labels[e].Y + ny*shift)}
				}
			}
		}
		pic.Links = append(pic.Links, l)
	}
	return pic
}

// linkKey orders the links of one pair of pods by their interfaces, so
// that the store's order does not move them.
func linkKey(v podlink.LinkView) string {
	a, b := v.Ends[0].Pod+":"+v.Ends[0].IfName, v.Ends[1].Pod+":"+v.Ends[1].IfName
	if b < a {
		a, b = b, a
	}
	return a + "\x00" + b + "\x00" + v.ID
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

func fmtF(f float64) string { return strconv.FormatFloat(round1(f), 'f', -1, 64) }

// pairCurve is a quadratic curve from a's centre to b's, bent sideways by
// offset at its middle (a straight line for 0), with a label point where
// the curve leaves each box.
func pairCurve(a, b labPod, offset float64) (string, [2]point) {
	dx, dy := b.At.X-a.At.X, b.At.Y-a.At.Y
	d := math.Hypot(dx, dy)
	nx, ny := -dy/d, dx/d
	// A quadratic's middle is halfway to its control point.
	c := point{(a.At.X+b.At.X)/2 + 2*offset*nx, (a.At.Y+b.At.Y)/2 + 2*offset*ny}
	at := func(t float64) point {
		u := 1 - t
		return point{u*u*a.At.X + 2*u*t*c.X + t*t*b.At.X, u*u*a.At.Y + 2*u*t*c.Y + t*t*b.At.Y}
	}
	path := "M" + fmtF(a.At.X) + " " + fmtF(a.At.Y) + " Q" + fmtF(c.X) + " " + fmtF(c.Y) + " " + fmtF(b.At.X) + " " + fmtF(b.At.Y)
	return path, [2]point{exitPoint(at, a, 0, 1), exitPoint(at, b, 1, -1)}
}

// exitPoint walks the curve from t0 in direction dir until it is clear of
// the box (with room for a line of text) and returns that point.
func exitPoint(at func(float64) point, box labPod, t0, dir float64) point {
	const step = 0.005
	for t := t0; t >= 0 && t <= 1; t += dir * step {
		p := at(t)
		if math.Abs(p.X-box.At.X) > box.W/2+14 || math.Abs(p.Y-box.At.Y) > box.H/2+10 {
			return point{round1(p.X), round1(p.Y)}
		}
	}
	p := at(0.5)
	return point{round1(p.X), round1(p.Y)}
}

// loopCurve is the k-th link from a pod to itself: a loop leaving its box
// away from the circle's centre (upward for a pod alone).
func loopCurve(p labPod, centre point, k int) (string, [2]point) {
	ux, uy := p.At.X-centre.X, p.At.Y-centre.Y
	if d := math.Hypot(ux, uy); d > 0 {
		ux, uy = ux/d, uy/d
	} else {
		ux, uy = 0, -1
	}
	nx, ny := -uy, ux
	reach := loopReach + parallelStep*float64(k)
	spread := 18.0 + 6*float64(k)
	s0 := point{p.At.X - nx*8, p.At.Y - ny*8}
	s1 := point{p.At.X + nx*8, p.At.Y + ny*8}
	// A symmetric cubic's middle is three quarters of the way to its
	// control points: they lie past the reach.
	far := (reach + p.H/2) / 0.75
	c0 := point{p.At.X + ux*far - nx*spread, p.At.Y + uy*far - ny*spread}
	c1 := point{p.At.X + ux*far + nx*spread, p.At.Y + uy*far + ny*spread}
	path := "M" + fmtF(s0.X) + " " + fmtF(s0.Y) + " C" + fmtF(c0.X) + " " + fmtF(c0.Y) + " " +
		fmtF(c1.X) + " " + fmtF(c1.Y) + " " + fmtF(s1.X) + " " + fmtF(s1.Y)
	at := func(t float64) point {
		u := 1 - t
		return point{u*u*u*s0.X + 3*u*u*t*c0.X + 3*u*t*t*c1.X + t*t*t*s1.X,
			u*u*u*s0.Y + 3*u*u*t*c0.Y + 3*u*t*t*c1.Y + t*t*t*s1.Y}
	}
	return path, [2]point{exitPoint(at, p, 0, 1), exitPoint(at, p, 1, -1)}
}

// legendXs are where the legend's items start, and its width.
func legendXs() ([]float64, float64) {
	var xs []float64
	x := margin
	for _, s := range legendStates {
		xs = append(xs, x)
		x += legendItem + float64(len(s))*charWidth
	}
	return xs, x - legendSpace + margin
}

// legendWidth is the width the legend's one row needs.
func legendWidth() float64 { _, w := legendXs(); return w }

// A legend item: its line and the space before the name, the space after.
const (
	legendItem  = 28.0 + legendSpace
	legendSpace = 20.0
)

// el is an SVG element as encoding/xml writes it: every attribute value
// and text escaped.
type el struct {
	XMLName xml.Name
	Attr    []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []*el
}

func newEl(name string, attrs ...string) *el {
	e := &el{XMLName: xml.Name{Local: name}}
	for i := 0; i+1 < len(attrs); i += 2 {
		e.Attr = append(e.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	return e
}

func (e *el) add(kids ...*el) *el { e.Kids = append(e.Kids, kids...); return e }

func textEl(s string, attrs ...string) *el { e := newEl("text", attrs...); e.Text = s; return e }

// titleEl is a tooltip: browsers show an element's first <title> child
// on hover.
func titleEl(lines ...string) *el { e := newEl("title"); e.Text = strings.Join(lines, "\n"); return e }

// svgStyle is the picture's own style sheet: no fonts or files from
// elsewhere.
const svgStyle = `
.pod rect { fill: #ffffff; stroke: #37474f; stroke-width: 1.5; }
.pod.away rect { fill: #f5f5f5; stroke-dasharray: 4 3; }
.pod text, .link text, .legend text { font-family: monospace; font-size: 12px; }
.pod text { text-anchor: middle; dominant-baseline: central; fill: #263238; }
.link path { fill: none; stroke-width: 2.5; }
.link.broken path { stroke-width: 4; }
.link text { text-anchor: middle; dominant-baseline: central; fill: #263238;
  paint-order: stroke; stroke: #ffffff; stroke-width: 3px; }
.link:hover path { stroke-width: 6; }
.legend text { dominant-baseline: central; fill: #263238; }
`

// svgTree draws pic. withNS writes the svg element's xmlns: a standalone
// file needs it, an inline one in HTML does without (and so names no URL).
func svgTree(pic labPicture, withNS bool) *el {
	root := newEl("svg", "width", fmtF(pic.Width), "height", fmtF(pic.Height),
		"viewBox", "0 0 "+fmtF(pic.Width)+" "+fmtF(pic.Height), "class", "ratchet-lab")
	if withNS {
		root.Attr = append([]xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: "http://www.w3.org/2000/svg"}}, root.Attr...)
	}
	root.add(titleEl(fmt.Sprintf("ratchet lab: %d pods, %d links", len(pic.Pods), len(pic.Links))))
	style := newEl("style")
	style.Text = svgStyle
	root.add(style)
	// Links first: the pods' boxes cover the curves' ends.
	links := newEl("g", "class", "links")
	for _, l := range pic.Links {
		v := l.View
		g := newEl("g", "class", "link "+string(v.State), "data-state", string(v.State))
		g.add(titleEl(linkTooltip(v)...))
		path := newEl("path", "d", l.Path, "stroke", colourOf(v.State))
		if d, ok := stateDash[v.State]; ok {
			path.Attr = append(path.Attr, xml.Attr{Name: xml.Name{Local: "stroke-dasharray"}, Value: d})
		}
		g.add(path)
		for i, at := range l.Labels {
			g.add(textEl(displayName(v.Ends[i].IfName), "x", fmtF(at.X), "y", fmtF(at.Y), "class", "ifname"))
		}
		links.add(g)
	}
	root.add(links)
	pods := newEl("g", "class", "pods")
	for _, p := range pic.Pods {
		class := "pod"
		if p.Rec == nil {
			class += " away"
		}
		g := newEl("g", "class", class)
		g.add(titleEl(podTooltip(p)...))
		g.add(newEl("rect", "x", fmtF(p.At.X-p.W/2), "y", fmtF(p.At.Y-p.H/2), "width", fmtF(p.W), "height", fmtF(p.H),
			"rx", "6"))
		g.add(textEl(displayName(p.Name), "x", fmtF(p.At.X), "y", fmtF(p.At.Y)))
		pods.add(g)
	}
	root.add(pods)
	legend := newEl("g", "class", "legend")
	y := pic.Height - legendHeight/2
	xs, _ := legendXs()
	for i, s := range legendStates {
		x := xs[i]
		line := newEl("line", "x1", fmtF(x), "y1", fmtF(y), "x2", fmtF(x+22), "y2", fmtF(y),
			"stroke", colourOf(s), "stroke-width", "3")
		if d, ok := stateDash[s]; ok {
			line.Attr = append(line.Attr, xml.Attr{Name: xml.Name{Local: "stroke-dasharray"}, Value: d})
		}
		legend.add(line, textEl(string(s), "x", fmtF(x+28), "y", fmtF(y)))
	}
	root.add(legend)
	return root
}

// podTooltip is a pod's hover text.
func podTooltip(p labPod) []string {
	lines := []string{shown(p.Name)}
	if p.Rec == nil {
		return append(lines, "not registered on this node (gone, not yet added, or on another node)")
	}
	return append(lines, "netns "+shown(p.Rec.Netns), "attachment "+shown(p.Rec.Attachment.String()))
}

// linkTooltip is a link's hover text: its ends, state, run-time settings
// and, where this node counts them, its counters toward each end's pod.
func linkTooltip(v podlink.LinkView) []string {
	lines := []string{endName(v.Ends[0]) + " — " + endName(v.Ends[1]), "state " + shown(string(v.State))}
	if !v.Settings.IsZero() || v.Added {
		lines = append(lines, "settings "+settingsColumn(store.LinkRecord{Ends: v.Ends, Settings: v.Settings, Added: v.Added}))
	}
	if v.Stats == nil {
		return lines
	}
	for i, t := range v.Stats.Toward {
		if t == nil {
			continue
		}
		lines = append(lines, fmt.Sprintf("→%s: %d bytes, %d packets, %d drops, %d errors",
			endName(v.Ends[i]), t.Bytes, t.Packets, t.Drops, t.Errors))
	}
	if c := carrierText(v.Stats); c != "" {
		lines = append(lines, "carrier changes "+c)
	}
	return lines
}

// carrierText is the ends' carrier changes as the table writes them
// ("2/2", "-" where not counted), "" when neither end is counted.
func carrierText(s *podlink.LinkStats) string {
	if s == nil || s.CarrierChanges[0] == nil && s.CarrierChanges[1] == nil {
		return ""
	}
	var c [2]string
	for i, p := range s.CarrierChanges {
		c[i] = "-"
		if p != nil {
			c[i] = strconv.FormatUint(uint64(*p), 10)
		}
	}
	return c[0] + "/" + c[1]
}

// printSVG writes the lab as one standalone SVG file.
func printSVG(w io.Writer, pods []*store.PodRecord, views []podlink.LinkView) error {
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", " ")
	if err := enc.Encode(svgTree(layoutLab(pods, views), true)); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

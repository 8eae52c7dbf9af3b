package ctl

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// xnode is any XML element, read back from the SVG.
type xnode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Text    string     `xml:",chardata"`
	Kids    []xnode    `xml:",any"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n *xnode) hasClass(c string) bool { return slices.Contains(strings.Fields(n.attr("class")), c) }

// all returns every element below n (n included) for which keep is true.
func (n *xnode) all(keep func(*xnode) bool) []*xnode {
	var out []*xnode
	if keep(n) {
		out = append(out, n)
	}
	for i := range n.Kids {
		out = append(out, n.Kids[i].all(keep)...)
	}
	return out
}

func (n *xnode) kid(name string) *xnode {
	for i := range n.Kids {
		if n.Kids[i].XMLName.Local == name {
			return &n.Kids[i]
		}
	}
	return nil
}

func (n *xnode) kids(name string) []*xnode {
	var out []*xnode
	for i := range n.Kids {
		if n.Kids[i].XMLName.Local == name {
			out = append(out, &n.Kids[i])
		}
	}
	return out
}

func parseSVG(t *testing.T, b []byte) *xnode {
	t.Helper()
	var root xnode
	if err := xml.Unmarshal(b, &root); err != nil {
		t.Fatalf("the SVG does not parse: %v\n%s", err, b)
	}
	if root.XMLName.Local != "svg" {
		t.Fatalf("root element %q", root.XMLName.Local)
	}
	return &root
}

func pod(name string) *store.PodRecord {
	return &store.PodRecord{Pod: name, Netns: "/run/netns/" + strings.ReplaceAll(name, "/", "-"),
		Attachment: store.AttachmentKey{Network: "lab", ContainerID: "sb-" + name, IfName: "eth0"}}
}

func view(id string, state podlink.State, a, ai, b, bi string) podlink.LinkView {
	return podlink.LinkView{ID: id, State: state, Ends: [2]store.LinkEnd{{Pod: a, IfName: ai}, {Pod: b, IfName: bi}}}
}

// aLab has a link in every state, two parallel links between r1 and r2,
// a link from r3 to itself, and a pod only known as a link's end.
func aLab() ([]*store.PodRecord, []podlink.LinkView) {
	pods := []*store.PodRecord{pod("lab/r1"), pod("lab/r2"), pod("lab/r3"), pod("lab/lonely")}
	views := []podlink.LinkView{
		view("l1", podlink.StateUp, "lab/r1", "e1", "lab/r2", "w1"),
		view("l2", podlink.StateImpaired, "lab/r1", "e2", "lab/r2", "w2"),
		view("l3", podlink.StatePending, "lab/r2", "e3", "lab/r4", "w1"),
		view("l4", podlink.StateParked, "lab/r3", "e1", "lab/r1", "w3"),
		view("l5", podlink.StatePulled, "lab/r3", "e2", "lab/r2", "w4"),
		view("l6", podlink.StateBroken, "lab/r3", "e3", "lab/r3", "e4"),
		view("l7", podlink.StateRemote, "lab/r1", "e9", "lab/far", "w9"),
	}
	views[1].Settings = &store.Settings{Toward: [2]*linkparam.Impairment{nil, {Rate: 10_000_000}}}
	views[4].Settings = &store.Settings{Pulled: true}
	carrier := uint32(2)
	views[0].Stats = &podlink.LinkStats{Toward: [2]*podlink.Traffic{{Bytes: 104422, Packets: 103}, {Bytes: 104508, Packets: 104, Drops: 1}},
		CarrierChanges: [2]*uint32{&carrier, &carrier}}
	return pods, views
}

func svgOf(t *testing.T, pods []*store.PodRecord, views []podlink.LinkView) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := printSVG(&b, pods, views); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSVGDrawsEveryPodAndLink: a box per pod, a curve per link coloured
// by its state, the interface names at its ends, parallel links apart,
// and counters and settings in the tooltips.
func TestSVGDrawsEveryPodAndLink(t *testing.T) {
	pods, views := aLab()
	root := parseSVG(t, svgOf(t, pods, views))
	if root.attr("xmlns") != "http://www.w3.org/2000/svg" {
		t.Errorf("standalone SVG without its namespace: %v", root.Attrs)
	}
	podEls := root.all(func(n *xnode) bool { return n.XMLName.Local == "g" && n.hasClass("pod") })
	var names []string
	for _, p := range podEls {
		names = append(names, p.kid("text").Text)
		if away := p.hasClass("away"); away != (p.kid("text").Text == "lab/r4" || p.kid("text").Text == "lab/far") {
			t.Errorf("pod %s: away=%v", p.kid("text").Text, away)
		}
	}
	if want := []string{"lab/far", "lab/lonely", "lab/r1", "lab/r2", "lab/r3", "lab/r4"}; !slices.Equal(names, want) {
		t.Errorf("pods %v, want %v", names, want)
	}
	linkEls := root.all(func(n *xnode) bool { return n.XMLName.Local == "g" && n.hasClass("link") })
	if len(linkEls) != len(views) {
		t.Fatalf("%d links drawn, want %d", len(linkEls), len(views))
	}
	byID := map[string]podlink.LinkView{}
	for _, v := range views {
		byID[v.Ends[0].Pod+":"+v.Ends[0].IfName] = v
	}
	paths := map[string]bool{}
	for _, l := range linkEls {
		title := l.kid("title").Text
		v, ok := byID[strings.Fields(title)[0]]
		if !ok {
			t.Fatalf("link titled %q is none of the lab's", title)
		}
		if l.attr("data-state") != string(v.State) || !l.hasClass(string(v.State)) {
			t.Errorf("%s: drawn as %q", v.ID, l.attr("class"))
		}
		path := l.kid("path")
		if got := path.attr("stroke"); got != stateColour[v.State] {
			t.Errorf("%s (%s): stroke %s, want %s", v.ID, v.State, got, stateColour[v.State])
		}
		if paths[path.attr("d")] {
			t.Errorf("%s: drawn over another link: %s", v.ID, path.attr("d"))
		}
		paths[path.attr("d")] = true
		var labels []string
		for _, tx := range l.kids("text") {
			labels = append(labels, tx.Text)
		}
		if !slices.Equal(labels, []string{v.Ends[0].IfName, v.Ends[1].IfName}) {
			t.Errorf("%s: labels %v", v.ID, labels)
		}
		for _, want := range []string{"state " + string(v.State), endName(v.Ends[1])} {
			if !strings.Contains(title, want) {
				t.Errorf("%s: tooltip %q lacks %q", v.ID, title, want)
			}
		}
		switch v.ID {
		case "l1":
			for _, want := range []string{"→lab/r1:e1: 104422 bytes, 103 packets, 0 drops", "→lab/r2:w1: 104508 bytes, 104 packets, 1 drops", "carrier changes 2/2"} {
				if !strings.Contains(title, want) {
					t.Errorf("tooltip %q lacks %q", title, want)
				}
			}
		case "l2":
			if !strings.Contains(title, "settings rate 10mbit→lab/r2:w2") {
				t.Errorf("tooltip %q lacks the impairment", title)
			}
		case "l5":
			if !strings.Contains(title, "settings pulled") || path.attr("stroke-dasharray") == "" {
				t.Errorf("pulled link: %q, dashes %q", title, path.attr("stroke-dasharray"))
			}
		}
	}
	// One colour per state, each in the legend.
	colours := map[string]podlink.State{}
	for s, c := range stateColour {
		if other, dup := colours[c]; dup {
			t.Errorf("%s and %s share %s", s, other, c)
		}
		colours[c] = s
	}
	legend := root.all(func(n *xnode) bool { return n.XMLName.Local == "g" && n.hasClass("legend") })[0]
	if len(legend.kids("line")) != len(stateColour) {
		t.Errorf("legend has %d states, want %d", len(legend.kids("line")), len(stateColour))
	}
}

// TestLayoutLabNoOverlap: no two pods' boxes overlap, and every box is
// inside the picture, for labs of 1 to 40 pods with names short and long.
func TestLayoutLabNoOverlap(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 16, 40} {
		var pods []*store.PodRecord
		var views []podlink.LinkView
		for i := range n {
			name := fmt.Sprintf("lab/r%d", i)
			if i%3 == 1 {
				name = fmt.Sprintf("a-namespace-of-some-length/router-%d-with-a-long-name-indeed", i)
			}
			pods = append(pods, pod(name))
			if i > 0 {
				views = append(views, view(fmt.Sprint(i), podlink.StateUp, pods[i-1].Pod, "e1", name, "w1"))
			}
		}
		views = append(views, view("self", podlink.StateUp, pods[0].Pod, "e2", pods[0].Pod, "e3"))
		pic := layoutLab(pods, views)
		if len(pic.Pods) != n || len(pic.Links) != len(views) {
			t.Fatalf("%d pods: laid out %d pods, %d links", n, len(pic.Pods), len(pic.Links))
		}
		for i, a := range pic.Pods {
			if a.At.X-a.W/2 < 0 || a.At.Y-a.H/2 < 0 || a.At.X+a.W/2 > pic.Width || a.At.Y+a.H/2 > pic.Height-legendHeight {
				t.Errorf("%d pods: %s at %v outside %vx%v", n, a.Name, a.At, pic.Width, pic.Height)
			}
			for _, b := range pic.Pods[i+1:] {
				if math.Abs(a.At.X-b.At.X) < (a.W+b.W)/2 && math.Abs(a.At.Y-b.At.Y) < (a.H+b.H)/2 {
					t.Errorf("%d pods: %s at %v and %s at %v overlap", n, a.Name, a.At, b.Name, b.At)
				}
			}
		}
	}
}

// TestSVGIsDeterministic: the same lab read in another order draws the
// same bytes.
func TestSVGIsDeterministic(t *testing.T) {
	pods, views := aLab()
	first := svgOf(t, pods, views)
	slices.Reverse(pods)
	slices.Reverse(views)
	if second := svgOf(t, pods, views); !bytes.Equal(first, second) {
		t.Errorf("the lab in reverse order draws differently:\n%s\n---\n%s", first, second)
	}
}

// TestSVGOfAnEmptyLab: a node with no pods draws a valid picture with
// its legend and nothing else.
func TestSVGOfAnEmptyLab(t *testing.T) {
	root := parseSVG(t, svgOf(t, nil, nil))
	if n := len(root.all(func(n *xnode) bool { return n.hasClass("pod") || n.hasClass("link") })); n != 0 {
		t.Errorf("%d pods and links drawn for an empty lab", n)
	}
	if w := root.attr("width"); w == "" || w == "0" {
		t.Errorf("width %q", w)
	}
	if _, doc := htmlOf(t, nil, nil); len(htmlAll(doc, func(n *html.Node) bool { return n.Data == "svg" })) != 1 {
		t.Error("the page of an empty lab has no picture")
	}
}

// hostile names: markup, quotes, an entity and a control character, as
// a pod's name, an interface's and a netns path.
const (
	hostilePod = `lab/<script>alert(1)</script>`
	hostileIf  = `e"><img src=x onerror=alert(2)>`
	hostileNS  = "/run/netns/a&b\x1b[2J"
)

func hostileLab() ([]*store.PodRecord, []podlink.LinkView) {
	p := pod(hostilePod)
	p.Netns = hostileNS
	return []*store.PodRecord{p, pod("lab/r2")},
		[]podlink.LinkView{view("l1", podlink.StateUp, hostilePod, hostileIf, "lab/r2", "w1")}
}

// TestSVGEscapesHostileNames: names are text in the picture, never markup,
// and a control character is shown Go-quoted.
func TestSVGEscapesHostileNames(t *testing.T) {
	pods, views := hostileLab()
	out := svgOf(t, pods, views)
	for _, bad := range []string{"<script", "<img", "\x1b"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("the SVG holds %q raw:\n%s", bad, out)
		}
	}
	root := parseSVG(t, out)
	if got := root.all(func(n *xnode) bool { return n.XMLName.Local == "script" || n.XMLName.Local == "img" }); len(got) != 0 {
		t.Errorf("a name made elements: %v", got)
	}
	var texts []string
	for _, n := range root.all(func(n *xnode) bool { return n.XMLName.Local == "text" || n.XMLName.Local == "title" }) {
		texts = append(texts, n.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{hostilePod, hostileIf, `"/run/netns/a&b\x1b[2J"`} {
		if !strings.Contains(all, want) {
			t.Errorf("the SVG's text lacks %q:\n%s", want, all)
		}
	}
}

func htmlOf(t *testing.T, pods []*store.PodRecord, views []podlink.LinkView) (string, *html.Node) {
	t.Helper()
	var b bytes.Buffer
	if err := printHTML(&b, pods, views); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatalf("the page does not parse: %v", err)
	}
	return b.String(), doc
}

// htmlAll returns the elements below n that keep accepts.
func htmlAll(n *html.Node, keep func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && keep(d) {
			out = append(out, d)
		}
	}
	return out
}

func htmlAttr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func htmlText(n *html.Node) string {
	var b strings.Builder
	for d := range n.Descendants() {
		if d.Type == html.TextNode {
			b.WriteString(d.Data)
		}
	}
	return b.String()
}

// TestHTMLIsSelfContained: one page with the picture inline (a group per
// pod and link, tooltips), a row per link and per registered pod, and
// nothing to fetch: no URL, no external script, style or image.
func TestHTMLIsSelfContained(t *testing.T) {
	pods, views := aLab()
	out, doc := htmlOf(t, pods, views)
	if strings.Contains(out, "://") {
		t.Errorf("the page names a URL:\n%s", out)
	}
	for _, n := range htmlAll(doc, func(n *html.Node) bool { return true }) {
		for _, a := range n.Attr {
			if a.Key == "src" || a.Key == "href" || a.Key == "xlink:href" {
				t.Errorf("<%s %s=%q>", n.Data, a.Key, a.Val)
			}
		}
		if n.Data == "link" || n.Data == "script" || n.Data == "iframe" || n.Data == "img" {
			t.Errorf("the page has a <%s>", n.Data)
		}
	}
	svgs := htmlAll(doc, func(n *html.Node) bool { return n.Data == "svg" })
	if len(svgs) != 1 {
		t.Fatalf("%d <svg> in the page", len(svgs))
	}
	inSVG := func(class string) int {
		return len(htmlAll(svgs[0], func(n *html.Node) bool {
			return n.Data == "g" && slices.Contains(strings.Fields(htmlAttr(n, "class")), class)
		}))
	}
	if inSVG("pod") != 6 || inSVG("link") != len(views) {
		t.Errorf("the picture has %d pods and %d links, want 6 and %d", inSVG("pod"), inSVG("link"), len(views))
	}
	rows := htmlAll(doc, func(n *html.Node) bool { return n.Data == "tr" && htmlAttr(n, "class") == "link" })
	if len(rows) != len(views) {
		t.Fatalf("%d link rows, want %d", len(rows), len(views))
	}
	found := false
	for _, r := range rows {
		if htmlAttr(r, "data-state") == "up" {
			found = true
			var cells []string
			for _, td := range htmlAll(r, func(n *html.Node) bool { return n.Data == "td" }) {
				cells = append(cells, htmlText(td))
			}
			if got := strings.Join(cells, " "); got != "up lab/r1:e1 lab/r2:w1 - 104422 103 0 0 104508 104 1 0 2/2" {
				t.Errorf("up row: %q", got)
			}
			sw := htmlAll(r, func(n *html.Node) bool { return htmlAttr(n, "class") == "swatch" })
			if len(sw) != 1 || !strings.Contains(htmlAttr(sw[0], "style"), stateColour[podlink.StateUp]) {
				t.Errorf("up row's swatch: %v", sw)
			}
		}
	}
	if !found {
		t.Error("no row for the up link")
	}
	if n := len(htmlAll(doc, func(n *html.Node) bool { return n.Data == "tr" && htmlAttr(n, "class") == "pod" })); n != len(pods) {
		t.Errorf("%d pod rows, want %d", n, len(pods))
	}
}

// TestHTMLEscapesHostileNames: in the page, too, names are text.
func TestHTMLEscapesHostileNames(t *testing.T) {
	pods, views := hostileLab()
	out, doc := htmlOf(t, pods, views)
	for _, bad := range []string{"<script", "<img", "\x1b"} {
		if strings.Contains(out, bad) {
			t.Errorf("the page holds %q raw", bad)
		}
	}
	if got := htmlAll(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "img" }); len(got) != 0 {
		t.Errorf("a name made elements: %v", got)
	}
	text := htmlText(doc)
	for _, want := range []string{hostilePod + ":" + hostileIf, `"/run/netns/a&b\x1b[2J"`} {
		if !strings.Contains(text, want) {
			t.Errorf("the page's text lacks %q", want)
		}
	}
}

// TestLinksPictureFlagsExclusive: one picture at a time, refused before
// anything is read, in one line naming both flags.
func TestLinksPictureFlagsExclusive(t *testing.T) {
	dir := t.TempDir() + "/no-store"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--svg", "--html"}, "--svg and --html: choose one"},
		{[]string{"--dot", "--svg"}, "--dot and --svg: choose one"},
		{[]string{"--html", "--dot"}, "--dot and --html: choose one"},
		{[]string{"--svg", "-o", "json"}, "--svg and -o: choose one"},
		{[]string{"--html", "-o", "json", "--stats"}, "--html and -o: choose one"},
	} {
		err := links(append([]string{"--store", dir}, c.args...), io.Discard)
		var u *usageError
		if !errors.As(err, &u) || err.Error() != c.want {
			t.Errorf("links %v: %v, want the usage error %q", c.args, err, c.want)
		}
	}
}

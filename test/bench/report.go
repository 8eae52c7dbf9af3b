package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// stats of one series.
type stats struct {
	n           int
	median, p90 time.Duration
	maxRSS      int64 // KiB, the largest of the series
	medRSS      int64 // KiB, median
}

func statsOf(ss []sample) (stats, bool) {
	if len(ss) == 0 {
		return stats{}, false
	}
	ds := make([]time.Duration, len(ss))
	rss := make([]int64, len(ss))
	for i, s := range ss {
		ds[i], rss[i] = s.d, s.maxRSS
	}
	slices.Sort(ds)
	slices.Sort(rss)
	return stats{n: len(ss), median: quantile(ds, 0.5), p90: quantile(ds, 0.9), maxRSS: rss[len(rss)-1], medRSS: rss[len(rss)/2]}, true
}

// quantile: the median is the mean of the two middle samples of an even
// count; other quantiles take the nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if q == 0.5 {
		if n%2 == 1 {
			return sorted[n/2]
		}
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	rank := int(math.Ceil(q*float64(n))) - 1
	return sorted[max(0, min(rank, n-1))]
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func mib(kib int64) string {
	if kib == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(kib)/1024)
}

// row is one line of the main table.
type row struct {
	name    string
	ratchet string   // series key
	ptp     string   // series key, or ""
	floor   []string // series keys summed into the floor, or nil
}

type report struct {
	res  map[string][]sample
	sb   strings.Builder
	bars []bar
}

type bar struct {
	what, target, measured string
	holds                  bool
}

func (r *report) get(key string) (stats, bool) { return statsOf(r.res[key]) }

func (r *report) line(format string, a ...any) { fmt.Fprintf(&r.sb, format+"\n", a...) }

func (r *report) table(rows []row) {
	r.line("| scenario | median | p90 | n | ptp median | ×ptp | floor | ×floor | peak RSS |")
	r.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, rw := range rows {
		s, ok := r.get(rw.ratchet)
		if !ok {
			continue
		}
		ptpMed, ptpRatio := "—", "—"
		if p, ok := r.get(rw.ptp); ok && rw.ptp != "" {
			ptpMed, ptpRatio = ms(p.median), ratio(s.median, p.median)
		}
		floorMed, floorRatio := "—", "—"
		if rw.floor != nil {
			var sum time.Duration
			have := true
			for _, k := range rw.floor {
				f, ok := r.get(k)
				have = have && ok
				sum += f.median
			}
			if have {
				floorMed, floorRatio = ms(sum), ratio(s.median, sum)
			}
		}
		r.line("| %s | %s | %s | %d | %s | %s | %s | %s | %s |", rw.name, ms(s.median), ms(s.p90), s.n, ptpMed, ptpRatio, floorMed, floorRatio, mib(s.medRSS))
	}
}

// median returns a series' median, or -1 when it was not run.
func (r *report) median(key string) time.Duration {
	s, ok := r.get(key)
	if !ok {
		return -1
	}
	return s.median
}

func (r *report) addBar(what, target, measured string, holds bool) {
	r.bars = append(r.bars, bar{what, target, measured, holds})
}

func (r *report) barsTable() {
	r.line("| bar | target | measured | holds |")
	r.line("|---|---|---|---|")
	for _, b := range r.bars {
		verdict := "yes"
		if !b.holds {
			verdict = "**no**"
		}
		r.line("| %s | %s | %s | %s |", b.what, b.target, b.measured, verdict)
	}
}

// render builds the whole report from the samples.
func render(res map[string][]sample, dp map[string]*dpResult, info []string, links []int, parallel []int, lab int, sizes map[string]int64, smoke bool) string {
	r := &report{res: res}
	title := "ratchet benchmark"
	if smoke {
		title += " (smoke run: a few iterations, figures are not meaningful)"
	}
	r.line("# %s", title)
	r.line("")
	for _, l := range info {
		r.line("- %s", l)
	}
	r.line("")
	r.line("Wall time of the plugin process as a runtime execs it (fork to wait4 and stdout drained).")
	r.line("*ptp* is the reference `ptp` + `static` IPAM plugin (one IPv4 address, one veth), interleaved with ratchet in the same iterations.")
	r.line("*floor* = median exec of a trivial static Go binary with the same environment and stdin + median of the same netlink")
	r.line("requests made in-process (no plugin); for VERSION, the trivial exec alone. Peak RSS is the median wait4 `ru_maxrss` of the plugin process.")
	r.line("")

	rows := []row{
		{"VERSION", "version/ratchet", "version/ptp", []string{"version/exec"}},
		{"ADD, one static veth link (peer.netns)", "veth/ratchet ADD", "veth/ptp ADD", []string{"veth/exec", "veth/kernel ADD"}},
		{"DEL, one static veth link", "veth/ratchet DEL", "veth/ptp DEL", []string{"veth/exec", "veth/kernel DEL"}},
		{"ADD, one static vxlan link (on a node)", "vxlan/ratchet ADD", "vxlan/ptp ADD", []string{"vxlan/exec", "vxlan/kernel ADD"}},
		{"DEL, one static vxlan link", "vxlan/ratchet DEL", "vxlan/ptp DEL", []string{"vxlan/exec", "vxlan/kernel DEL"}},
	}
	for _, n := range links {
		p := fmt.Sprintf("pod%d/", n)
		ptpAdd, ptpDel := "", ""
		if n == 1 {
			ptpAdd, ptpDel = p+"ptp ADD", p+"ptp DEL"
		}
		rows = append(rows,
			row{fmt.Sprintf("pod links ×%d: ADD of the first pod (peer absent)", n), p + "ratchet ADD first", ptpAdd, []string{p + "exec", p + "kernel ADD first"}},
			row{fmt.Sprintf("pod links ×%d: ADD of the second pod (stitches)", n), p + "ratchet ADD second", ptpAdd, []string{p + "exec", p + "kernel ADD second"}},
			row{fmt.Sprintf("pod links ×%d: DEL of the first pod (peer present)", n), p + "ratchet DEL first", ptpDel, []string{p + "exec", p + "kernel DEL first"}},
			row{fmt.Sprintf("pod links ×%d: DEL of the last pod", n), p + "ratchet DEL last", ptpDel, []string{p + "exec", p + "kernel DEL last"}},
		)
	}
	rows = append(rows,
		row{"cross-node link: ADD of the first pod (etcd store, ratchetd)", "cross/ratchet ADD first", "", nil},
		row{"cross-node link: ADD of the second pod (peer on the other node)", "cross/ratchet ADD second", "", nil},
		row{"cross-node link: DEL of the first pod", "cross/ratchet DEL first", "", nil},
		row{"cross-node link: DEL of the last pod", "cross/ratchet DEL last", "", nil},
		row{"same link, both pods on one node (local store): ADD first", "cross/local ADD first", "", nil},
		row{"same link, both pods on one node (local store): ADD second", "cross/local ADD second", "", nil},
	)
	r.line("## Latency")
	r.line("")
	r.table(rows)
	r.line("")

	if len(parallel) > 0 {
		r.line("## Parallel ADD throughput")
		r.line("")
		r.line("Batches of ADDs (one static veth link each, ptp: one veth each) with k in flight; time per ADD = batch wall time / batch size.")
		r.line("")
		r.line("| in flight | ratchet per ADD (median) | p90 | ADD/s | ptp per ADD | ptp ADD/s | ×ptp |")
		r.line("|---:|---:|---:|---:|---:|---:|---:|")
		for _, k := range parallel {
			s, ok := r.get(fmt.Sprintf("par%d/ratchet", k))
			p, okp := r.get(fmt.Sprintf("par%d/ptp", k))
			if !ok || !okp {
				continue
			}
			r.line("| %d | %s | %s | %.0f | %s | %.0f | %s |", k, ms(s.median), ms(s.p90), float64(time.Second)/float64(s.median),
				ms(p.median), float64(time.Second)/float64(p.median), ratio(s.median, p.median))
		}
		r.line("")
	}

	r.labSection(lab)
	r.dataplaneSection(dp)

	if len(links) > 1 {
		r.line("## Cost per link")
		r.line("")
		r.line("Median time divided by the number of links; in brackets, the same for the in-process kernel floor (no exec).")
		r.line("")
		r.line("| links | ADD first / link | ADD second / link | DEL first / link | DEL last / link |")
		r.line("|---:|---:|---:|---:|---:|")
		for _, n := range links {
			per := func(op string) string {
				d := r.median(fmt.Sprintf("pod%d/ratchet %s", n, op))
				if d < 0 {
					return "—"
				}
				cell := fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)/float64(n))
				if k := r.median(fmt.Sprintf("pod%d/kernel %s", n, op)); k > 0 {
					cell += fmt.Sprintf(" (%.3f)", float64(k)/float64(time.Millisecond)/float64(n))
				}
				return cell
			}
			r.line("| %d | %s | %s | %s | %s |", n, per("ADD first"), per("ADD second"), per("DEL first"), per("DEL last"))
		}
		r.line("")
	}

	r.line("## Binary size (stripped, `-trimpath -ldflags '-s -w'`, CGO_ENABLED=0)")
	r.line("")
	r.line("| binary | bytes | MiB |")
	r.line("|---|---:|---:|")
	for _, name := range []string{"ratchet", "ptp", "static", "trivial"} {
		if sz, ok := sizes[name]; ok {
			r.line("| %s | %d | %.2f |", name, sz, float64(sz)/(1<<20))
		}
	}
	r.line("")

	r.evalBars(links, sizes)
	r.labBars(lab)
	r.dataplaneBars(dp)
	r.line("## Bars (medians on this machine)")
	r.line("")
	r.barsTable()
	r.line("")
	return r.sb.String()
}

func (r *report) evalBars(links []int, sizes map[string]int64) {
	if a, p := r.median("veth/ratchet ADD"), r.median("veth/ptp ADD"); a > 0 && p > 0 {
		x := float64(a) / float64(p)
		r.addBar("ADD, one veth link / ptp ADD", "≤ 0.5", fmt.Sprintf("%.3f (%s / %s)", x, ms(a), ms(p)), x <= 0.5)
	}
	if v, t := r.median("version/ratchet"), r.median("version/exec"); v > 0 && t > 0 {
		x := float64(v) / float64(t)
		r.addBar("VERSION / trivial static Go binary", "≤ 1.5", fmt.Sprintf("%.3f (%s / %s)", x, ms(v), ms(t)), x <= 1.5)
	}
	worst := func(n int, ops ...string) (time.Duration, string) {
		var w time.Duration = -1
		var parts []string
		for _, op := range ops {
			d := r.median(fmt.Sprintf("pod%d/ratchet %s", n, op))
			if d < 0 {
				return -1, ""
			}
			w = max(w, d)
			part := op + " " + ms(d)
			if k := r.median(fmt.Sprintf("pod%d/kernel %s", n, op)); k > 0 {
				part += " (kernel floor " + ms(k) + ")"
			}
			parts = append(parts, part)
		}
		return w, strings.Join(parts, ", ")
	}
	if slices.Contains(links, 256) {
		if w, s := worst(256, "ADD first", "ADD second"); w >= 0 {
			r.addBar("ADD, 256 links", "≤ 300 ms", s, w <= 300*time.Millisecond)
		}
	}
	if slices.Contains(links, 1024) {
		if w, s := worst(1024, "ADD first", "ADD second"); w >= 0 {
			r.addBar("ADD, 1024 links", "≤ 1.2 s", s, w <= 1200*time.Millisecond)
		}
		if slices.Contains(links, 256) {
			// Linear: 4 × the links cost at most 4 × the time, within 10%
			// (fixed costs make a linear cost come out below 4).
			for _, op := range []string{"ADD first", "ADD second"} {
				a, b := r.median("pod256/ratchet "+op), r.median("pod1024/ratchet "+op)
				if a > 0 && b > 0 {
					x := float64(b) / float64(a)
					m := fmt.Sprintf("%.2f× (%s → %s)", x, ms(a), ms(b))
					if ka, kb := r.median("pod256/kernel "+op), r.median("pod1024/kernel "+op); ka > 0 && kb > 0 {
						m += fmt.Sprintf("; kernel floor %.2f×", float64(kb)/float64(ka))
					}
					r.addBar("ADD cost linear in links ("+op+")", "t(1024) / t(256) ≤ 4.4", m, x <= 4.4)
				}
			}
		}
	}
	if slices.Contains(links, 256) {
		if w, s := worst(256, "DEL first", "DEL last"); w >= 0 {
			r.addBar("DEL, 256 links", "≤ 1.5 s", s, w <= 1500*time.Millisecond)
		}
	}
	for _, op := range []string{"ADD first", "ADD second"} {
		x, l := r.median("cross/ratchet "+op), r.median("cross/local "+op)
		if x > 0 && l > 0 {
			q := float64(x) / float64(l)
			r.addBar("ADD, one cross-node link / same on one node ("+op+")", "≤ 1.5", fmt.Sprintf("%.2f (%s / %s)", q, ms(x), ms(l)), q <= 1.5)
		}
	}
	if sz, ok := sizes["ratchet"]; ok {
		r.addBar("plugin binary, stripped", "≤ 8 MB", fmt.Sprintf("%d bytes (%.2f MiB)", sz, float64(sz)/(1<<20)), sz <= 8_000_000)
	}
	var peak int64
	for _, k := range []string{"pod256/ratchet ADD first", "pod256/ratchet ADD second"} {
		if s, ok := r.get(k); ok {
			peak = max(peak, s.maxRSS)
		}
	}
	if peak > 0 {
		r.addBar("peak RSS during ADD of 256 links (largest sample)", "≤ 16 MiB", mib(peak), peak <= 16*1024)
	}
}

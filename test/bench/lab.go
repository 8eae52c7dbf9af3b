package main

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// ---- a live lab: ratchetctl link on running pods ----

// labRate is what `link set` applies: a rate alone, a token bucket (tbf),
// which every kernel has (netem is a module this machine lacks).
const labRate = "10mbit"

// labAllOfLinks is the pod's links that `link down --all-of` pulls at
// once (issue 14's bar: 1,000 links in one command); a smoke run takes
// fewer.
const labAllOfLinks = 1000

func (b *bench) labLinks() int {
	if b.cfg.smoke {
		return 100
	}
	return labAllOfLinks
}

// ctlRun execs ratchetctl with args and times it from just before fork to
// just after wait4 returned, as invocation.run times a plugin.
func (b *bench) ctlRun(key string, args ...string) error {
	cmd := exec.CommandContext(b.ctx, b.bins.ratchetctl, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		return fmt.Errorf("ratchetctl %s: %v\n%s", strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	if key != "" {
		b.record(key, sample{d: d})
	}
	return nil
}

// labPods ADDs two pods joined by spec's links (untimed) and returns the
// invocations that DEL them.
func (b *bench) labPods(it *iteration, store string, spec podLinkSpec, podA, podB string) ([2]invocation, error) {
	var invs [2]invocation
	for side, pod := range []string{podA, podB} {
		peer := []string{podB, podA}[side]
		n, err := b.podNS(it, fmt.Sprint("l", side))
		if err != nil {
			return invs, err
		}
		conf := ratchetConf(store, map[string]any{
			"capabilities":   map[string]any{"io.kubernetes.cri.pod-annotations": true},
			"runtimeConfig":  map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": spec.annotation(side, peer)}},
			"maxLinksPerPod": max(spec.n, netconf.DefaultMaxLinksPerPod),
		})
		inv := invocation{bin: b.bins.ratchet, command: "ADD", containerID: "sandbox-" + pod, netns: n.Path,
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + pod + ";K8S_POD_UID=uid-" + pod,
			path: b.bins.dir, conf: conf, node: b.node}
		out, err := inv.run(b.ctx)
		if err != nil {
			return invs, err
		}
		if err := expect(out, spec.n, "ratchet ADD ("+pod+")"); err != nil {
			return invs, err
		}
		inv.command = "DEL"
		invs[side] = inv
	}
	return invs, nil
}

// parkedEnds returns the parked ifindexes of the link of pod's ifName, as
// recorded in the store (read with the node lock, untimed).
func parkedEnds(dir, pod, ifName string) ([2]int, error) {
	st, err := store.OpenLocal(dir)
	if err != nil {
		return [2]int{}, err
	}
	defer st.Close()
	rec, err := st.LinkAt(context.Background(), pod, ifName)
	if err != nil {
		return [2]int{}, err
	}
	if rec == nil || rec.Ends[0].ParkedIndex == 0 || rec.Ends[1].ParkedIndex == 0 {
		return [2]int{}, fmt.Errorf("store %s: no stitched link at %s:%s", dir, pod, ifName)
	}
	return [2]int{rec.Ends[0].ParkedIndex, rec.Ends[1].ParkedIndex}, nil
}

// parkedDown counts the parked netdevs that are administratively down.
func parkedDown(dir string) (int, error) {
	park, err := openPath(filepath.Join(netnsDir, parking.Name(dir)))
	if err != nil {
		return 0, err
	}
	defer park.h.Close()
	h, err := handleIn(park)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	ls, err := h.LinkList()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range ls {
		if l.Attrs().Name != "lo" && l.Attrs().Flags&net.FlagUp == 0 {
			n++
		}
	}
	return n, nil
}

// labOne times `ratchetctl link down/up/set/reset` on one link as a
// process, and the same kernel steps made in-process on a link of its own
// (two parked ends set down, up, given a tbf qdisc, cleared).
func (b *bench) labOne(iters int) error {
	dir := b.storeDir("lab")
	spec := podLinkSpec{n: 1}
	return b.runIterations("lab: link down/up/set", iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		podA, podB := fmt.Sprintf("la%d", iter), fmt.Sprintf("lb%d", iter)
		invs, err := b.labPods(it, dir, spec, podA, podB)
		if err != nil {
			return err
		}
		end := "bench/" + podA + ":" + spec.ifname(0, 0)
		variants := []func() error{
			func() error {
				for _, step := range [][]string{
					{"down"}, {"up"}, {"set", "--rate", labRate}, {"reset"},
				} {
					args := append([]string{"link", step[0], "--store", dir}, step[1:]...)
					if err := b.ctlRun("lab/ctl "+step[0], append(args, end)...); err != nil {
						return err
					}
					if step[0] == "down" {
						if n, err := parkedDown(dir); err != nil || n != 2 {
							return fmt.Errorf("after link down: %d parked ends down, want 2 (%v)", n, err)
						}
					}
				}
				return nil
			},
			func() error { return b.labKernel(dir, "bench/"+podB, spec.ifname(1, 0)) },
		}
		if err := interleave(iter, variants...); err != nil {
			return err
		}
		for _, inv := range invs {
			if _, err := inv.run(b.ctx); err != nil {
				return err
			}
		}
		return b.parkingEmpty(dir)
	})
}

// labKernel times the kernel steps of down, up, set and reset on the link
// of pod's ifName, made in-process with one handle in the parking
// namespace, as ratchetctl's executor makes them.
func (b *bench) labKernel(dir, pod, ifName string) error {
	idx, err := parkedEnds(dir, pod, ifName)
	if err != nil {
		return err
	}
	parkNS, err := ns.GetNS(filepath.Join(netnsDir, parking.Name(dir)))
	if err != nil {
		return err
	}
	defer parkNS.Close()
	p, err := link.OpenParking(nil, parkNS)
	if err != nil {
		return err
	}
	defer p.Close()
	rate, err := linkparam.ParseRate(labRate)
	if err != nil {
		return err
	}
	m := link.ImpairmentOf(&linkparam.Impairment{Rate: rate})
	both := func(f func(i int) error) func() error {
		return func() error {
			for _, i := range idx {
				if err := f(i); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, step := range []struct {
		key string
		f   func() error
	}{
		{"lab/kernel down", both(func(i int) error { return p.SetUp(i, false) })},
		{"lab/kernel up", both(func(i int) error { return p.SetUp(i, true) })},
		{"lab/kernel set", both(func(i int) error { return p.Impair(i, m) })},
		{"lab/kernel reset", both(p.ClearImpairment)},
	} {
		if err := b.timedFunc(step.key, step.f); err != nil {
			return fmt.Errorf("%s: %w", step.key, err)
		}
	}
	return nil
}

// labAllOf times `ratchetctl link down --all-of POD` and `link up --all-of
// POD` on a pod with n links.
func (b *bench) labAllOf(n, iters int) error {
	dir := b.storeDir(fmt.Sprintf("laball%d", n))
	spec := podLinkSpec{n: n}
	return b.runIterations(fmt.Sprintf("lab: link down/up --all-of (%d)", n), iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		podA, podB := fmt.Sprintf("ma%d", iter), fmt.Sprintf("mb%d", iter)
		invs, err := b.labPods(it, dir, spec, podA, podB)
		if err != nil {
			return err
		}
		// issue 15's counters: every link's, from one dump of the
		// parking namespace (a few execs: the median is the figure).
		for range 3 {
			if err := b.ctlRun(fmt.Sprintf("laball%d/ctl links --stats", n), "links", "--store", dir, "--stats"); err != nil {
				return err
			}
		}
		if err := b.ctlRun(fmt.Sprintf("laball%d/ctl down", n), "link", "down", "--store", dir, "--all-of", "bench/"+podA); err != nil {
			return err
		}
		if d, err := parkedDown(dir); err != nil || d != 2*n {
			return fmt.Errorf("after link down --all-of: %d parked ends down, want %d (%v)", d, 2*n, err)
		}
		if err := b.ctlRun(fmt.Sprintf("laball%d/ctl up", n), "link", "up", "--store", dir, "--all-of", "bench/"+podB); err != nil {
			return err
		}
		if d, err := parkedDown(dir); err != nil || d != 0 {
			return fmt.Errorf("after link up --all-of: %d parked ends down, want 0 (%v)", d, err)
		}
		for _, inv := range invs {
			if _, err := inv.run(b.ctx); err != nil {
				return err
			}
		}
		return b.parkingEmpty(dir)
	})
}

// labSection is the report's table of the lab scenario (n: the links of
// the --all-of pod), when it ran.
func (r *report) labSection(n int) {
	rows := []struct{ name, ctl, kernel string }{
		{"`link down` (pull the cable): one link", "lab/ctl down", "lab/kernel down"},
		{"`link up` (plug it back): one link", "lab/ctl up", "lab/kernel up"},
		{"`link set --rate " + labRate + "` (tbf on both parked ends): one link", "lab/ctl set", "lab/kernel set"},
		{"`link reset`: one link", "lab/ctl reset", "lab/kernel reset"},
		{fmt.Sprintf("`link down --all-of POD`: %d links", n), fmt.Sprintf("laball%d/ctl down", n), ""},
		{fmt.Sprintf("`link up --all-of POD`: %d links", n), fmt.Sprintf("laball%d/ctl up", n), ""},
		{fmt.Sprintf("`links --stats`: %d links", n), fmt.Sprintf("laball%d/ctl links --stats", n), ""},
	}
	head := false
	for _, rw := range rows {
		s, ok := r.get(rw.ctl)
		if !ok {
			continue
		}
		if !head {
			r.line("## A live lab: `ratchetctl link` on running pods")
			r.line("")
			r.line("One exec of ratchetctl (fork to wait4), on a link between two running pods; *kernel* is the same netlink work")
			r.line("made in-process with one handle in the parking namespace (no exec, no store, no lock).")
			r.line("")
			r.line("| command | median | p90 | n | kernel median | kernel p90 |")
			r.line("|---|---:|---:|---:|---:|---:|")
			head = true
		}
		km, kp := "—", "—"
		if k, ok := r.get(rw.kernel); ok && rw.kernel != "" {
			km, kp = ms(k.median), ms(k.p90)
		}
		r.line("| %s | %s | %s | %d | %s | %s |", rw.name, ms(s.median), ms(s.p90), s.n, km, kp)
	}
	if head {
		r.line("")
	}
}

// labBars are issue 14's bars for the lab scenario, and issue 15's for
// `links --stats`.
func (r *report) labBars(n int) {
	for _, op := range []string{"down", "up", "set"} {
		if c := r.median("lab/ctl " + op); c > 0 {
			r.addBar("`link "+op+"`, one link, as a process", "≤ 10 ms", ms(c), c <= 10*time.Millisecond)
		}
		if k := r.median("lab/kernel " + op); k > 0 {
			r.addBar("`link "+op+"`, one link, kernel work", "≤ 1 ms", ms(k), k <= time.Millisecond)
		}
	}
	if c := r.median(fmt.Sprintf("laball%d/ctl links --stats", n)); c > 0 {
		r.addBar(fmt.Sprintf("`links --stats` on %d links, as a process", n), "≤ 200 ms", ms(c), c <= 200*time.Millisecond)
	}
	if d, u := r.median(fmt.Sprintf("laball%d/ctl down", n)), r.median(fmt.Sprintf("laball%d/ctl up", n)); d > 0 && u > 0 {
		r.addBar(fmt.Sprintf("%d links pulled / restored in one command (`--all-of`)", n), "≤ 1 s each",
			ms(d)+" / "+ms(u), d <= time.Second && u <= time.Second)
	}
}

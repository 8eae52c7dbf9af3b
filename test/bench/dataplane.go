package main

// ---- the data plane: TCP throughput and RTT over the links ratchet makes ----

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
)

// iperf3Binary and pingBinary are Debian's (packages iperf3 and
// iputils-ping), which make deps installs.
const (
	iperf3Binary = "/usr/bin/iperf3"
	pingBinary   = "/usr/bin/ping"
)

// dpVNI is the plain VXLAN pair's VNI, below the agents' allocation
// range (netconf.DefaultVNIFirst and up), so that it never meets a tunnel
// of theirs on the same UDP socket of a node.
const dpVNI = 4242

// dpPath is one path between two namespaces the scenario measures: an
// iperf3 server listens at server's addr; the client sends to it.
type dpPath struct {
	key            string
	client, server *nsRef
	addr           string
	srv            *exec.Cmd
}

// dpResult is one series of the data-plane scenario: per round
// throughput (bit/s), and every RTT sample (µs) of every round.
type dpResult struct {
	tput []float64
	rtt  []float64
	// cpu is iperf3's CPU time of client and server together, per
	// round, in % of one core (its getrusage: user + system, which holds
	// the softirq work done in their context, most of a veth's).
	cpu []float64
	// frames is what each capture wrote, to show that it saw the traffic.
	frames []int
}

func (b *bench) dp(key string) *dpResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dpRes == nil {
		b.dpRes = map[string]*dpResult{}
	}
	r, ok := b.dpRes[key]
	if !ok {
		r = &dpResult{}
		b.dpRes[key] = r
	}
	return r
}

// dpLink is a pod-link annotation of one link named ifName to peer's
// peerIf, with one IPv4 address.
func dpLink(ifName, peer, peerIf, cidr string) string {
	return string(mustJSON([]any{map[string]any{"name": ifName, "ips": []string{cidr},
		"peer": map[string]any{"pod": peer, "name": peerIf}}}))
}

// dataplane measures TCP throughput (iperf3) and RTT (ping) of (a) a
// stitched pod link against (b) a direct veth pair, of (c) a cross-node
// pod link against (d) a plain VXLAN pair between the same simulated
// nodes, and of the stitched link while `ratchetctl capture` reads it and
// right after a capture ended. The paths are made once; every round runs
// each of them in turn, the order rotated each round.
func (b *bench) dataplane(rounds int, secs int, pings int) error {
	for _, bin := range []string{iperf3Binary, pingBinary} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("data plane: %s: %w (make deps installs it)", bin, err)
		}
	}
	var made []*nsRef
	defer func() {
		for _, n := range made {
			_ = b.ns.remove(n)
		}
	}()
	mk := func(tag string) (*nsRef, error) {
		n, err := b.ns.create(tag)
		if err == nil {
			made = append(made, n)
		}
		return n, err
	}

	// (a) two pods joined by one pod link, stitched in the parking
	// namespace of the node's store.
	store := b.storeDir("dataplane")
	pa, err := mk("dpa")
	if err != nil {
		return err
	}
	pb, err := mk("dpb")
	if err != nil {
		return err
	}
	var dels []invocation
	defer func() {
		for i := len(dels) - 1; i >= 0; i-- {
			if _, err := dels[i].run(context.Background()); err != nil {
				logf("data plane: DEL: %v", err)
			}
		}
	}()
	for i, p := range []struct {
		pod, peer string
		ns        *nsRef
		ann       string
	}{
		{"dpa", "dpb", pa, dpLink("e0", "dpb", "w0", "198.51.100.1/24")},
		{"dpb", "dpa", pb, dpLink("w0", "dpa", "e0", "198.51.100.2/24")},
	} {
		conf := ratchetConf(store, map[string]any{
			"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
			"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": p.ann}},
		})
		inv := invocation{bin: b.bins.ratchet, command: "ADD", containerID: "sandbox-" + p.pod, netns: p.ns.Path,
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + p.pod, path: b.bins.dir, conf: conf, node: b.node}
		out, err := inv.run(b.ctx)
		if err != nil {
			return err
		}
		inv.command = "DEL"
		dels = append(dels, inv)
		if err := expect(out, 1, fmt.Sprintf("data plane ADD (pod %d)", i)); err != nil {
			return err
		}
	}
	stitchedMTU, err := mtuOf(pa, "e0")
	if err != nil {
		return err
	}

	// (b) a veth pair straight between two namespaces, same MTU.
	da, err := mk("dpda")
	if err != nil {
		return err
	}
	db, err := mk("dpdb")
	if err != nil {
		return err
	}
	if err := directPair(da, db, stitchedMTU); err != nil {
		return err
	}

	// (a') the same stitch made by hand (the bench's kernel floor: a veth
	// from each namespace into a namespace of its own, the parked ends
	// joined by u32 + mirred): what the kernel path itself costs.
	ka, err := mk("dpka")
	if err != nil {
		return err
	}
	kb, err := mk("dpkb")
	if err != nil {
		return err
	}
	kpark, err := mk("dpkpark")
	if err != nil {
		return err
	}
	if err := handStitch(ka, kb, kpark); err != nil {
		return err
	}

	// (c) two pods on two nodes, ratchetd on each; (d) a VXLAN pair made
	// straight on the same nodes' underlay.
	c, err := b.startCluster()
	if err != nil {
		return err
	}
	defer c.stop(b)
	// The cross-node pods' DELs run while etcd and the agents still do.
	var crossDels []invocation
	defer func() {
		for i := len(crossDels) - 1; i >= 0; i-- {
			if _, err := crossDels[i].run(context.Background()); err != nil {
				logf("data plane: DEL: %v", err)
			}
		}
	}()
	xa, err := mk("dpxa")
	if err != nil {
		return err
	}
	xb, err := mk("dpxb")
	if err != nil {
		return err
	}
	for i, p := range []struct {
		pod string
		ns  *nsRef
		ann string
	}{
		{"dpxa", xa, dpLink("e0", "dpxb", "w0", "203.0.113.1/24")},
		{"dpxb", xb, dpLink("w0", "dpxa", "e0", "203.0.113.2/24")},
	} {
		inv := invocation{bin: b.bins.ratchet, command: "ADD", containerID: "sandbox-" + p.pod, netns: p.ns.Path,
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + p.pod, path: b.bins.dir,
			conf: c.confAnnotated(i, p.ann), node: c.nodes[i]}
		out, err := inv.run(b.ctx)
		if err != nil {
			return err
		}
		inv.command = "DEL"
		crossDels = append(crossDels, inv)
		if err := expect(out, 1, fmt.Sprintf("data plane cross-node ADD (pod %d)", i)); err != nil {
			return err
		}
	}
	if err := waitCarrier(xa.Path, "e0", 10*time.Second); err != nil {
		return err
	}
	crossMTU, err := mtuOf(xa, "e0")
	if err != nil {
		return err
	}
	va, err := mk("dpva")
	if err != nil {
		return err
	}
	vb, err := mk("dpvb")
	if err != nil {
		return err
	}
	if err := plainVxlan(c.nodes[0], va, "192.0.2.2", "203.0.113.1/24", crossMTU); err != nil {
		return err
	}
	if err := plainVxlan(c.nodes[1], vb, "192.0.2.1", "203.0.113.2/24", crossMTU); err != nil {
		return err
	}

	paths := []*dpPath{
		{key: "direct", client: da, server: db, addr: "198.51.100.2"},
		{key: "stitched", client: pa, server: pb, addr: "198.51.100.2"},
		{key: "hand-stitched", client: ka, server: kb, addr: "198.51.100.2"},
		{key: "vxlan", client: va, server: vb, addr: "203.0.113.2"},
		{key: "cross", client: xa, server: xb, addr: "203.0.113.2"},
	}
	defer func() {
		for _, p := range paths {
			p.stopServer()
		}
	}()
	for _, p := range paths {
		if err := b.startServer(p); err != nil {
			return err
		}
	}
	byKey := map[string]*dpPath{}
	for _, p := range paths {
		byKey[p.key] = p
	}
	measure := func(key string, p *dpPath) func() error {
		return func() error { return b.measurePath(key, p, secs, pings) }
	}
	stitched := byKey["stitched"]
	variants := []func() error{
		measure("direct", byKey["direct"]),
		measure("stitched", stitched),
		measure("hand-stitched", byKey["hand-stitched"]),
		measure("vxlan", byKey["vxlan"]),
		measure("cross", byKey["cross"]),
		func() error { return b.measureCaptured("capture on", b.bins.ratchetctl, store, stitched, secs, pings) },
		// Capture idle: the same link right after a capture of it ended.
		measure("capture idle", stitched),
	}
	if b.cfg.captureBaseline != "" {
		variants = append(variants, func() error {
			return b.measureCaptured("capture on (baseline)", b.cfg.captureBaseline, store, stitched, secs, pings)
		})
	}
	start := time.Now()
	for r := range rounds {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := interleave(r, variants...); err != nil {
			return fmt.Errorf("data plane, round %d: %w", r+1, err)
		}
	}
	logf("%-28s %3d rounds in %v", "data plane", rounds, time.Since(start).Round(time.Millisecond))
	return nil
}

// confAnnotated is node i's network config for a pod whose links are the
// annotation ann.
func (c *clusterEnv) confAnnotated(i int, ann string) []byte {
	return ratchetConf(c.stores[i], map[string]any{
		"cniVersion": "1.1.0",
		"store": map[string]any{"type": "etcd", "dir": c.stores[i], "endpoints": []string{benchEtcd},
			"insecure": true, "prefix": benchPrefix, "agentSocket": c.sockets[i]},
		"node":          map[string]any{"name": fmt.Sprintf("node%d", i)},
		"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
		"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": ann}},
	})
}

func mtuOf(n *nsRef, ifName string) (int, error) {
	h, err := handleIn(n)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(ifName)
	if err != nil {
		return 0, fmt.Errorf("%s in %s: %w", ifName, n.Name, err)
	}
	return l.Attrs().MTU, nil
}

// directPair makes the reference of a stitched link: one veth straight
// from a to b, 198.51.100.1/24 and .2/24, with the stitched link's MTU.
func directPair(a, b *nsRef, mtu int) error {
	ha, hb, err := handlesIn(a, b)
	if err != nil {
		return err
	}
	defer ha.Close()
	defer hb.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "e0"
	attrs.MTU = mtu
	attrs.Flags = net.FlagUp
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: "w0", PeerNamespace: netlink.NsFd(b.Fd())}
	if err := ha.LinkAdd(veth); err != nil {
		return fmt.Errorf("direct pair: %w", err)
	}
	if err := addAddr(ha, veth, "198.51.100.1/24"); err != nil {
		return err
	}
	peer, err := hb.LinkByName("w0")
	if err != nil {
		return err
	}
	if err := hb.LinkSetMTU(peer, mtu); err != nil {
		return err
	}
	if err := hb.LinkSetUp(peer); err != nil {
		return err
	}
	return addAddr(hb, peer, "198.51.100.2/24")
}

// handStitch joins a and b as a stitched pod link, made in-process
// (floorPodLinks) with park as the parking namespace, and gives the ends
// 198.51.100.1/24 and .2/24.
func handStitch(a, b, park *nsRef) error {
	spec := podLinkSpec{n: 1}
	first, err := floorPodLinks(a, park, spec, 0, nil)
	if err != nil {
		return err
	}
	if _, err := floorPodLinks(b, park, spec, 1, first); err != nil {
		return err
	}
	for i, n := range []*nsRef{a, b} {
		h, err := handleIn(n)
		if err != nil {
			return err
		}
		l, err := h.LinkByName(spec.ifname(i, 0))
		if err == nil {
			err = addAddr(h, l, fmt.Sprintf("198.51.100.%d/24", i+1))
		}
		h.Close()
		if err != nil {
			return fmt.Errorf("hand-stitched link: %w", err)
		}
	}
	return nil
}

// plainVxlan makes the reference of a cross-node link's end: a VXLAN
// netdev made on node (its UDP socket there, on the underlay) and born in
// pod, toward remote, with the cross-node link's MTU.
func plainVxlan(node, pod *nsRef, remote, cidr string, mtu int) error {
	return vxlanInto(node, pod, vxlanEnd{vni: dpVNI, mtu: mtu, remote: remote, cidr: cidr})
}

// startServer starts iperf3's server in p's server namespace and waits
// until a client gets through (which also shows the path carries TCP).
func (b *bench) startServer(p *dpPath) error {
	cmd := exec.Command(iperf3Binary, "-s", "-B", p.addr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := inNode(p.server, cmd.Start); err != nil {
		return fmt.Errorf("iperf3 server (%s): %w", p.key, err)
	}
	p.srv = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, err := b.iperf(p, 1)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			return fmt.Errorf("%s path: no TCP through it within 10s: %w", p.key, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopServer ends the server this tool started, by PID.
func (p *dpPath) stopServer() {
	if p.srv == nil || p.srv.Process == nil {
		return
	}
	_ = p.srv.Process.Kill()
	_ = p.srv.Wait()
	p.srv = nil
}

// iperf runs one iperf3 TCP test of secs seconds from p's client and
// returns what the server received, in bit/s, and the CPU client and
// server used, in % of one core.
func (b *bench) iperf(p *dpPath, secs int) (float64, float64, error) {
	cmd := exec.CommandContext(b.ctx, iperf3Binary, "-c", p.addr, "-t", strconv.Itoa(secs), "-J")
	var out strings.Builder
	cmd.Stdout = &out
	err := inNode(p.client, cmd.Run)
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			CPU struct {
				Host   float64 `json:"host_total"`
				Remote float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal([]byte(out.String()), &res); jerr != nil {
		return 0, 0, fmt.Errorf("iperf3 (%s): %v; output: %s", p.key, errors.Join(err, jerr), tail(out.String(), 300))
	}
	if err != nil || res.Error != "" {
		return 0, 0, fmt.Errorf("iperf3 (%s): %v %s", p.key, err, res.Error)
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, 0, fmt.Errorf("iperf3 (%s): nothing received", p.key)
	}
	return res.End.SumReceived.BitsPerSecond, res.End.CPU.Host + res.End.CPU.Remote, nil
}

// ping sends n pings at 10 ms intervals from p's client and returns each
// reply's RTT in µs.
func (b *bench) ping(p *dpPath, n int) ([]float64, error) {
	cmd := exec.CommandContext(b.ctx, pingBinary, "-n", "-c", strconv.Itoa(n), "-i", "0.01", "-W", "1", p.addr)
	var out strings.Builder
	cmd.Stdout = &out
	err := inNode(p.client, cmd.Run)
	var rtts []float64
	for _, l := range strings.Split(out.String(), "\n") {
		_, t, ok := strings.Cut(l, " time=")
		if !ok {
			continue
		}
		t, _, _ = strings.Cut(t, " ")
		v, perr := strconv.ParseFloat(t, 64)
		if perr == nil {
			rtts = append(rtts, v*1000)
		}
	}
	if len(rtts) < n/2 {
		return nil, fmt.Errorf("ping (%s): %d replies of %d (%v): %s", p.key, len(rtts), n, err, tail(out.String(), 300))
	}
	return rtts, nil
}

// measurePath records one throughput test and one ping series of p under
// key.
func (b *bench) measurePath(key string, p *dpPath, secs, pings int) error {
	bps, cpu, err := b.iperf(p, secs)
	if err != nil {
		return err
	}
	rtts, err := b.ping(p, pings)
	if err != nil {
		return err
	}
	r := b.dp(key)
	b.mu.Lock()
	r.tput = append(r.tput, bps)
	r.cpu = append(r.cpu, cpu)
	r.rtt = append(r.rtt, rtts...)
	b.mu.Unlock()
	return nil
}

// measureCaptured measures the stitched link while `ratchetctl capture`
// (the binary ctl) writes its frames to /dev/null, under key: the cost of
// reading them, not of a disk (at these rates a file would fill one).
func (b *bench) measureCaptured(key, ctl, store string, p *dpPath, secs, pings int) error {
	cmd := exec.Command(ctl, "capture", "--store", store, "-w", os.DevNull, "bench/dpa:e0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(errPipe)
	if !lines.Scan() || !strings.HasPrefix(lines.Text(), "capturing ") {
		return fmt.Errorf("ratchetctl capture did not start: %q", lines.Text())
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(errPipe)
		rest <- string(b)
	}()
	if err := b.measurePath(key, p, secs, pings); err != nil {
		return err
	}
	_ = cmd.Process.Signal(os.Interrupt)
	werr := cmd.Wait()
	stopped = true
	msg := <-rest
	if werr != nil {
		return fmt.Errorf("ratchetctl capture: %v: %s", werr, tail(msg, 500))
	}
	var frames int
	for _, l := range strings.Split(msg, "\n") {
		if n, ok := strings.CutSuffix(strings.TrimSpace(l), " frames captured"); ok {
			frames, _ = strconv.Atoi(n)
		}
	}
	if frames <= 0 {
		return fmt.Errorf("ratchetctl capture wrote no frames of a link carrying iperf3: %s", tail(msg, 500))
	}
	r := b.dp(key)
	b.mu.Lock()
	r.frames = append(r.frames, frames)
	b.mu.Unlock()
	return nil
}

// ---- the report ----

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func p99Of(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, max(0, int(float64(len(s))*0.99+0.5)-1))]
}

// roundRatio is the median over rounds of a's throughput over ref's in
// the same round: both ran minutes apart at most, under the same load.
func roundRatio(a, ref *dpResult) float64 {
	n := min(len(a.tput), len(ref.tput))
	if n == 0 {
		return 0
	}
	rs := make([]float64, n)
	for i := range n {
		rs[i] = a.tput[i] / ref.tput[i]
	}
	return medianOf(rs)
}

// dataplaneSection is the report's table of the data-plane scenario, when
// it ran.
func (r *report) dataplaneSection(dp map[string]*dpResult) {
	if len(dp) == 0 {
		return
	}
	rows := []struct{ name, key, ref string }{
		{"direct veth pair (reference)", "direct", ""},
		{"stitched pod link (parking namespace, tc mirred)", "stitched", "direct"},
		{"the same stitch made by hand (kernel floor)", "hand-stitched", "direct"},
		{"plain VXLAN pair between two nodes (reference)", "vxlan", ""},
		{"cross-node pod link (ratchetd, stitched to a tunnel)", "cross", "vxlan"},
		{"stitched pod link, `ratchetctl capture` running", "capture on", "stitched"},
		{"stitched pod link, right after a capture ended", "capture idle", "stitched"},
		{"stitched pod link, `-capture-baseline`'s capture running", "capture on (baseline)", "stitched"},
	}
	r.line("## Data plane: TCP throughput and RTT")
	r.line("")
	r.line("iperf3 TCP (one stream, client → server) and ping (10 ms interval), the paths interleaved in each round;")
	r.line("throughput: median over rounds, ×ref: median over rounds of the ratio to the reference in the same round;")
	r.line("RTT: median and p99 of every reply of every round. The capture writes to /dev/null. CPU: iperf3's client + server")
	r.line("(user + system, softirq work in their context included), %% of one core, median over rounds, and per Gbit/s.")
	r.line("")
	r.line("| path | rounds | throughput | ×ref | RTT median | RTT p99 | RTT ×ref | CPU | CPU per Gbit/s |")
	r.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, rw := range rows {
		a, ok := dp[rw.key]
		if !ok || len(a.tput) == 0 {
			continue
		}
		x, xr := "—", "—"
		if ref, ok := dp[rw.ref]; ok && rw.ref != "" {
			x = fmt.Sprintf("%.2f", roundRatio(a, ref))
			if m := medianOf(ref.rtt); m > 0 {
				xr = fmt.Sprintf("%.2f", medianOf(a.rtt)/m)
			}
		}
		perG := make([]float64, len(a.cpu))
		for i := range a.cpu {
			perG[i] = a.cpu[i] / (a.tput[i] / 1e9)
		}
		r.line("| %s | %d | %.2f Gbit/s | %s | %.0f µs | %.0f µs | %s | %.0f %% | %.1f %% |", rw.name, len(a.tput), medianOf(a.tput)/1e9, x,
			medianOf(a.rtt), p99Of(a.rtt), xr, medianOf(a.cpu), medianOf(perG))
	}
	if c, ok := dp["capture on"]; ok && len(c.frames) > 0 {
		r.line("")
		r.line("Frames the captures wrote (median of rounds): %.0f.", medianOf(intsToFloats(c.frames)))
	}
	r.line("")
	r.line("Throughput of each round (Gbit/s), in the order the rounds ran:")
	r.line("")
	for _, rw := range rows {
		a, ok := dp[rw.key]
		if !ok || len(a.tput) == 0 {
			continue
		}
		vs := make([]string, len(a.tput))
		for i, v := range a.tput {
			vs[i] = fmt.Sprintf("%.1f", v/1e9)
		}
		r.line("- %s: %s", rw.key, strings.Join(vs, ", "))
	}
	r.line("")
}

func intsToFloats(v []int) []float64 {
	f := make([]float64, len(v))
	for i, x := range v {
		f[i] = float64(x)
	}
	return f
}

// dataplaneBars are issue 15's budgets for the data plane.
func (r *report) dataplaneBars(dp map[string]*dpResult) {
	ratioBar := func(what, target, key, ref string, holds func(float64) bool) {
		a, okA := dp[key]
		b, okB := dp[ref]
		if !okA || !okB || len(a.tput) == 0 || len(b.tput) == 0 {
			return
		}
		x := roundRatio(a, b)
		r.addBar(what, target, fmt.Sprintf("%.2f (%.2f / %.2f Gbit/s)", x, medianOf(a.tput)/1e9, medianOf(b.tput)/1e9), holds(x))
	}
	ratioBar("stitched pod link / direct veth pair, TCP throughput", "≥ 0.95 (issue 15: 0.98)", "stitched", "direct", func(x float64) bool { return x >= 0.95 })
	if a, b := dp["stitched"], dp["direct"]; a != nil && b != nil && len(a.rtt) > 0 && len(b.rtt) > 0 {
		ma, mb := medianOf(a.rtt), medianOf(b.rtt)
		// "Same RTT": within 10 µs or 10 %, ping's own resolution here.
		r.addBar("stitched pod link / direct veth pair, RTT median", "same (within 10 % or 10 µs)", fmt.Sprintf("%.0f / %.0f µs", ma, mb),
			ma <= mb*1.1 || ma-mb <= 10)
	}
	ratioBar("cross-node pod link / plain VXLAN pair, TCP throughput", "≥ 0.95", "cross", "vxlan", func(x float64) bool { return x >= 0.95 })
	ratioBar("capture running / not, TCP throughput", "≥ 0.8", "capture on", "stitched", func(x float64) bool { return x >= 0.8 })
	ratioBar("capture not running (after one ran) / baseline, TCP throughput", "no measurable cost (≥ 0.95)", "capture idle", "stitched", func(x float64) bool { return x >= 0.95 })
}

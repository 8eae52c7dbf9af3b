package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
)

// sample is one timed operation.
type sample struct {
	d      time.Duration
	maxRSS int64 // KiB; 0 when not a plugin exec
}

// bench holds what every scenario uses.
type bench struct {
	ctx   context.Context
	ns    *netnsSet
	bins  *binaries
	tmp   string
	cfg   config
	node  *nsRef // the simulated node the plugins run on
	fpark *nsRef // the floor's own parking namespace
	mu    sync.Mutex
	res   map[string][]sample
	// stores are the store directories by scenario, made on first use.
	stores map[string]string
	// etcdData is the cross-node scenario's etcd data directory.
	etcdData string
	// dpRes are the data-plane scenario's series, by path.
	dpRes map[string]*dpResult
	// graveyard holds the namespaces of finished iterations until flush.
	graveyard []*nsRef
}

func (b *bench) record(key string, s sample) {
	b.mu.Lock()
	b.res[key] = append(b.res[key], s)
	b.mu.Unlock()
}

// storeDir is the scenario's ratchet store directory: one per scenario,
// kept across its iterations as a node keeps its store.
func (b *bench) storeDir(scenario string) string {
	if dir, ok := b.stores[scenario]; ok {
		return dir
	}
	dir := filepath.Join(b.tmp, "store-"+scenario)
	b.stores[scenario] = dir
	b.ns.watchParking(dir)
	return dir
}

// iteration holds the namespaces one iteration creates; when it ends,
// whatever happened, they are retired (and deleted by the next flush).
type iteration struct {
	b   *bench
	n   int
	nss []*nsRef
}

func (b *bench) newIteration(n int) *iteration { return &iteration{b: b, n: n} }

func (it *iteration) netns(tag string) (*nsRef, error) {
	n, err := it.b.ns.create(tag)
	if err == nil {
		it.nss = append(it.nss, n)
	}
	return n, err
}

// done retires the iteration's namespaces. They are deleted in batches
// (see flush), not at once: the kernel tears a namespace down in a
// background worker that takes the RTNL lock, and that work must not land
// in the next iteration's timed operations.
func (it *iteration) done() error {
	it.b.graveyard = append(it.b.graveyard, it.nss...)
	it.nss = nil
	if len(it.b.graveyard) >= 96 {
		return it.b.flush()
	}
	return nil
}

// flush deletes the retired namespaces and waits for the kernel to finish
// tearing them down.
func (b *bench) flush() error {
	var first error
	for _, n := range b.graveyard {
		if err := b.ns.remove(n); err != nil && first == nil {
			first = err
		}
	}
	if len(b.graveyard) > 0 && b.cfg.settle > 0 {
		time.Sleep(b.cfg.settle)
	}
	b.graveyard = nil
	return first
}

// interleave runs the variants of one iteration, starting with a
// different one each iteration so that no variant always runs first
// (right after the namespace set-up) or last.
func interleave(iter int, variants ...func() error) error {
	for i := range variants {
		if err := variants[(iter+i)%len(variants)](); err != nil {
			return err
		}
	}
	return nil
}

// timed runs an exec and records it under key.
func (b *bench) timed(key string, inv invocation) (outcome, error) {
	out, err := inv.run(b.ctx)
	if err != nil {
		return out, err
	}
	b.record(key, sample{d: out.wall, maxRSS: out.maxRSS})
	return out, nil
}

// timedFunc runs in-process work and records it under key.
func (b *bench) timedFunc(key string, f func() error) error {
	start := time.Now()
	err := f()
	d := time.Since(start)
	if err != nil {
		return err
	}
	b.record(key, sample{d: d})
	return nil
}

// expect checks that a result lists want interfaces.
func expect(out outcome, want int, what string) error {
	got, err := interfaces(out.stdout)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if got != want {
		return fmt.Errorf("%s: result lists %d interfaces, want %d", what, got, want)
	}
	return nil
}

// runIterations runs warm-up iterations (not recorded) and then n timed
// ones. Warm-up results are discarded by recording into a scratch map.
func (b *bench) runIterations(name string, n int, one func(iter int) error) error {
	start := time.Now()
	if b.cfg.warmup > 0 {
		saved := b.res
		b.res = map[string][]sample{}
		for i := 0; i < b.cfg.warmup; i++ {
			if err := one(i); err != nil {
				b.res = saved
				return fmt.Errorf("%s (warm-up): %w", name, err)
			}
		}
		b.res = saved
	}
	if err := b.flush(); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		if err := one(i); err != nil {
			return fmt.Errorf("%s, iteration %d: %w", name, i+1, err)
		}
	}
	if err := b.flush(); err != nil {
		return err
	}
	logf("%-28s %3d iterations in %v", name, n, time.Since(start).Round(time.Millisecond))
	return nil
}

// ratchetConf renders a ratchet network config.
func ratchetConf(storeDir string, fields map[string]any) []byte {
	conf := map[string]any{"cniVersion": "1.0.0", "name": "bench", "type": "ratchet",
		"store": map[string]any{"dir": storeDir}}
	for k, v := range fields {
		conf[k] = v
	}
	return mustJSON(conf)
}

// ptpConf is the reference: ptp with static IPAM, one IPv4 address.
func ptpConf(addr, gw string) []byte {
	return mustJSON(map[string]any{"cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "ipMasq": false,
		"ipam": map[string]any{"type": "static", "addresses": []any{map[string]any{"address": addr, "gateway": gw}}}})
}

// ptpVariant times ptp's ADD and DEL of one pod in a fresh namespace, run
// on the node, under keys prefix+"ptp ADD" / "ptp DEL".
func (b *bench) ptpVariant(it *iteration, prefix string) func() error {
	return func() error {
		pod, err := it.netns("ptp")
		if err != nil {
			return err
		}
		inv := invocation{bin: b.bins.ptp, command: "ADD", containerID: fmt.Sprintf("ptp-%d", it.n), netns: pod.Path,
			path: b.bins.dir, conf: ptpConf("192.0.2.1/24", "192.0.2.254"), node: b.node}
		out, err := b.timed(prefix+"ptp ADD", inv)
		if err != nil {
			return err
		}
		if err := expect(out, 2, "ptp ADD"); err != nil {
			return err
		}
		if err := b.onNode(out); err != nil {
			return err
		}
		inv.command = "DEL"
		_, err = b.timed(prefix+"ptp DEL", inv)
		return err
	}
}

// onNode checks that the host end ptp made (the first interface of its
// result) is in the simulated node, not in the real host.
func (b *bench) onNode(out outcome) error {
	var res struct {
		Interfaces []struct {
			Name string `json:"name"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(out.stdout, &res); err != nil || len(res.Interfaces) == 0 {
		return fmt.Errorf("ptp result: %v: %s", err, out.stdout)
	}
	h, err := handleIn(b.node)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.LinkByName(res.Interfaces[0].Name); err != nil {
		return fmt.Errorf("ptp's host end %s is not in the node namespace: %v", res.Interfaces[0].Name, err)
	}
	return nil
}

// execVariant times the trivial binary exec'd exactly as the plugin is.
func (b *bench) execVariant(key string, inv invocation) func() error {
	return func() error {
		inv.bin = b.bins.trivial
		_, err := b.timed(key, inv)
		return err
	}
}

// ---- VERSION ----

func (b *bench) version(iters int) error {
	inv := invocation{command: "VERSION", containerID: "bench-version", path: b.bins.dir,
		conf: []byte(`{"cniVersion":"1.0.0"}`), node: b.node}
	return b.runIterations("VERSION", iters, func(iter int) error {
		r, p := inv, inv
		r.bin, p.bin = b.bins.ratchet, b.bins.ptp
		return interleave(iter,
			func() error { _, err := b.timed("version/ratchet", r); return err },
			func() error { _, err := b.timed("version/ptp", p); return err },
			b.execVariant("version/exec", inv),
		)
	})
}

// ---- one static veth link (peer.netns) ----

func (b *bench) staticVeth(iters int) error {
	store := b.storeDir("veth")
	return b.runIterations("static veth", iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		// newInv is ratchet's ADD of a fresh pod with one link to a fresh
		// peer namespace.
		newInv := func(tag string) (invocation, *nsRef, *nsRef, error) {
			pod, err := it.netns(tag + "pod")
			if err != nil {
				return invocation{}, nil, nil, err
			}
			peer, err := it.netns(tag + "peer")
			if err != nil {
				return invocation{}, nil, nil, err
			}
			conf := ratchetConf(store, map[string]any{"links": []any{map[string]any{
				"name": "in1", "ips": []string{"192.0.2.1/24"},
				"peer": map[string]any{"netns": peer.Path, "name": "in2", "ips": []string{"192.0.2.2/24"}}}}})
			return invocation{bin: b.bins.ratchet, command: "ADD", containerID: fmt.Sprintf("veth-%d", iter),
				netns: pod.Path, path: b.bins.dir, conf: conf, node: b.node}, pod, peer, nil
		}
		return interleave(iter,
			func() error {
				inv, _, _, err := newInv("")
				if err != nil {
					return err
				}
				out, err := b.timed("veth/ratchet ADD", inv)
				if err != nil {
					return err
				}
				if err := expect(out, 1, "ratchet ADD"); err != nil {
					return err
				}
				inv.command = "DEL"
				_, err = b.timed("veth/ratchet DEL", inv)
				return err
			},
			func() error {
				_, pod, peer, err := newInv("k")
				if err != nil {
					return err
				}
				if err := b.timedFunc("veth/kernel ADD", func() error { return floorStaticVeth(pod, peer) }); err != nil {
					return err
				}
				return b.timedFunc("veth/kernel DEL", func() error { return floorDelete(pod, nil, nil) })
			},
			b.ptpVariant(it, "veth/"),
			func() error {
				inv, _, _, err := newInv("x")
				if err != nil {
					return err
				}
				return b.execVariant("veth/exec", inv)()
			},
		)
	})
}

// ---- one static vxlan link between two simulated nodes ----

func (b *bench) vxlan(iters int) error {
	store := b.storeDir("vxlan")
	nodeA, err := b.ns.create("nodeA")
	if err != nil {
		return err
	}
	defer b.ns.remove(nodeA)
	nodeB, err := b.ns.create("nodeB")
	if err != nil {
		return err
	}
	defer b.ns.remove(nodeB)
	if err := underlay(nodeA, nodeB); err != nil {
		return err
	}
	conf := ratchetConf(store, map[string]any{
		"node": map[string]any{"vtepDev": "underlay0"},
		"links": []any{map[string]any{"name": "vx0", "ips": []string{"203.0.113.1/24"},
			"vxlan": map[string]any{"remote": "192.0.2.2", "vni": 7001}}}})
	return b.runIterations("static vxlan", iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		inv := invocation{bin: b.bins.ratchet, command: "ADD", containerID: fmt.Sprintf("vxlan-%d", iter),
			path: b.bins.dir, conf: conf, node: nodeA}
		return interleave(iter,
			func() error {
				pod, err := it.netns("pod")
				if err != nil {
					return err
				}
				inv := inv
				inv.netns = pod.Path
				out, err := b.timed("vxlan/ratchet ADD", inv)
				if err != nil {
					return err
				}
				if err := expect(out, 1, "ratchet ADD"); err != nil {
					return err
				}
				inv.command = "DEL"
				_, err = b.timed("vxlan/ratchet DEL", inv)
				return err
			},
			func() error {
				pod, err := it.netns("kpod")
				if err != nil {
					return err
				}
				if err := b.timedFunc("vxlan/kernel ADD", func() error { return floorVxlan(nodeA, pod, 7002) }); err != nil {
					return err
				}
				return b.timedFunc("vxlan/kernel DEL", func() error { return floorDelete(pod, nil, nil) })
			},
			b.ptpVariant(it, "vxlan/"),
			func() error {
				pod, err := it.netns("xpod")
				if err != nil {
					return err
				}
				inv := inv
				inv.netns = pod.Path
				return b.execVariant("vxlan/exec", inv)()
			},
		)
	})
}

// underlay joins two node namespaces with a veth underlay0, addressed
// 192.0.2.1/24 in a and 192.0.2.2/24 in b.
func underlay(a, b *nsRef) error {
	ha, hb, err := handlesIn(a, b)
	if err != nil {
		return err
	}
	defer ha.Close()
	defer hb.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "underlay0"
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "underlay0", PeerNamespace: netlink.NsFd(b.Fd())}); err != nil {
		return fmt.Errorf("underlay: %w", err)
	}
	for i, h := range []*netlink.Handle{ha, hb} {
		l, err := h.LinkByName("underlay0")
		if err != nil {
			return err
		}
		if err := addAddr(h, l, fmt.Sprintf("192.0.2.%d/24", i+1)); err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return err
		}
	}
	return nil
}

// ---- pod links: n links between pods a and b ----

// podLinkSpec is n links between two pods: a's e<i> to b's w<i>, each end
// with one IPv6 address (2001:db8:<n>:<i>::1 and ::2, /64), or none.
type podLinkSpec struct {
	n   int
	ips bool
}

func (s podLinkSpec) ifname(side, i int) string {
	return [2]string{"e", "w"}[side] + fmt.Sprint(i)
}

func (s podLinkSpec) addrs(side, i int) []string {
	if !s.ips {
		return nil
	}
	return []string{fmt.Sprintf("2001:db8:%x:%x::%d/64", s.n, i, side+1)}
}

// annotation is pod side's ratchet.cni.dev/links, naming peer.
func (s podLinkSpec) annotation(side int, peer string) string {
	links := make([]any, s.n)
	for i := range links {
		l := map[string]any{"name": s.ifname(side, i), "peer": map[string]any{"pod": peer, "name": s.ifname(1-side, i)}}
		if a := s.addrs(side, i); a != nil {
			l["ips"] = a
		}
		links[i] = l
	}
	return string(mustJSON(links))
}

// podNS makes a pod namespace for the pod-link scenarios, with IPv6 off
// when asked.
func (b *bench) podNS(it *iteration, tag string) (*nsRef, error) {
	n, err := it.netns(tag)
	if err != nil || b.cfg.podIPv6 {
		return n, err
	}
	for _, key := range []string{"all", "default"} {
		if err := sysctlIn(n, "net/ipv6/conf/"+key+"/disable_ipv6", "1"); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (b *bench) podLinks(spec podLinkSpec, iters int) error {
	name := fmt.Sprintf("pod links n=%d", spec.n)
	prefix := fmt.Sprintf("pod%d/", spec.n)
	store := b.storeDir(fmt.Sprintf("pod%d", spec.n))
	return b.runIterations(name, iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		podA, podB := fmt.Sprintf("a%d", iter), fmt.Sprintf("b%d", iter)
		invFor := func(pod, peer string, side int, n *nsRef) invocation {
			conf := ratchetConf(store, map[string]any{
				"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
				"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": spec.annotation(side, peer)}},
				// Past the default bound at the largest counts measured.
				"maxLinksPerPod": max(spec.n, netconf.DefaultMaxLinksPerPod),
			})
			return invocation{bin: b.bins.ratchet, command: "ADD", containerID: "sandbox-" + pod, netns: n.Path,
				args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + pod + ";K8S_POD_UID=uid-" + pod,
				path: b.bins.dir, conf: conf, node: b.node}
		}
		variants := []func() error{
			func() error {
				a, err := b.podNS(it, "a")
				if err != nil {
					return err
				}
				bb, err := b.podNS(it, "b")
				if err != nil {
					return err
				}
				ia, ib := invFor(podA, podB, 0, a), invFor(podB, podA, 1, bb)
				out, err := b.timed(prefix+"ratchet ADD first", ia)
				if err != nil {
					return err
				}
				if err := expect(out, spec.n, "ratchet ADD (first pod)"); err != nil {
					return err
				}
				if out, err = b.timed(prefix+"ratchet ADD second", ib); err != nil {
					return err
				}
				if err := expect(out, spec.n, "ratchet ADD (second pod)"); err != nil {
					return err
				}
				ia.command, ib.command = "DEL", "DEL"
				if _, err := b.timed(prefix+"ratchet DEL first", ia); err != nil {
					return err
				}
				if _, err := b.timed(prefix+"ratchet DEL last", ib); err != nil {
					return err
				}
				return b.parkingEmpty(store)
			},
			func() error {
				a, err := b.podNS(it, "ka")
				if err != nil {
					return err
				}
				bb, err := b.podNS(it, "kb")
				if err != nil {
					return err
				}
				var pa, pb []int
				if err := b.timedFunc(prefix+"kernel ADD first", func() (err error) {
					pa, err = floorPodLinks(a, b.fpark, spec, 0, nil)
					return err
				}); err != nil {
					return err
				}
				if err := b.timedFunc(prefix+"kernel ADD second", func() (err error) {
					pb, err = floorPodLinks(bb, b.fpark, spec, 1, pa)
					return err
				}); err != nil {
					return err
				}
				if err := b.timedFunc(prefix+"kernel DEL first", func() error { return floorDelete(a, b.fpark, pb) }); err != nil {
					return err
				}
				return b.timedFunc(prefix+"kernel DEL last", func() error { return floorDelete(bb, b.fpark, nil) })
			},
			func() error {
				x, err := it.netns("x")
				if err != nil {
					return err
				}
				return b.execVariant(prefix+"exec", invFor(podB, podA, 1, x))()
			},
		}
		if b.cfg.smoke && spec.n >= 256 {
			// The floor's code is the same for every n; a smoke run need
			// not spend seconds on it.
			variants = slices.Delete(variants, 1, 2)
		}
		if spec.n == 1 {
			variants = append(variants, b.ptpVariant(it, prefix))
		}
		return interleave(iter, variants...)
	})
}

// parkingEmpty checks that ratchet left no parked end behind once both
// pods are gone.
func (b *bench) parkingEmpty(store string) error {
	path := filepath.Join(netnsDir, parking.Name(store))
	park, err := openPath(path)
	if err != nil {
		return fmt.Errorf("parking netns %s: %w", path, err)
	}
	defer park.h.Close()
	h, err := handleIn(park)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.Attrs().Name != "lo" {
			return fmt.Errorf("parking netns %s still holds %s after both pods' DEL", path, l.Attrs().Name)
		}
	}
	return nil
}

// ---- parallel ADD throughput ----

// parallel times batch ADDs of one static veth link each, inFlight at a
// time, from the moment the first starts to the moment the last ends; the
// sample is that wall time divided by batch (time per ADD). DELs follow,
// untimed, as do ptp's rounds, interleaved.
func (b *bench) parallel(inFlight, batch, rounds int) error {
	store := b.storeDir(fmt.Sprintf("par%d", inFlight))
	key := fmt.Sprintf("par%d/", inFlight)
	return b.runIterations(fmt.Sprintf("parallel ADD, %d in flight", inFlight), rounds, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		round := func(name string, invs []invocation, want int) error {
			start := time.Now()
			if err := b.pool(inFlight, invs, func(out outcome) error { return expect(out, want, name+" ADD") }); err != nil {
				return err
			}
			b.record(key+name, sample{d: time.Since(start) / time.Duration(len(invs))})
			for i := range invs {
				invs[i].command = "DEL"
			}
			return b.pool(inFlight, invs, nil)
		}
		return interleave(iter,
			func() error {
				invs := make([]invocation, batch)
				for i := range invs {
					pod, err := it.netns("pod")
					if err != nil {
						return err
					}
					peer, err := it.netns("peer")
					if err != nil {
						return err
					}
					conf := ratchetConf(store, map[string]any{"links": []any{map[string]any{
						"name": "in1", "ips": []string{"192.0.2.1/24"},
						"peer": map[string]any{"netns": peer.Path, "name": "in2", "ips": []string{"192.0.2.2/24"}}}}})
					invs[i] = invocation{bin: b.bins.ratchet, command: "ADD", containerID: fmt.Sprintf("par-%d-%d", iter, i),
						netns: pod.Path, path: b.bins.dir, conf: conf, node: b.node}
				}
				return round("ratchet", invs, 1)
			},
			func() error {
				invs := make([]invocation, batch)
				for i := range invs {
					pod, err := it.netns("ptp")
					if err != nil {
						return err
					}
					// Distinct pod addresses: ptp routes each to its host veth.
					addr := fmt.Sprintf("198.51.100.%d/24", i+1)
					invs[i] = invocation{bin: b.bins.ptp, command: "ADD", containerID: fmt.Sprintf("ptp-par-%d-%d", iter, i),
						netns: pod.Path, path: b.bins.dir, conf: ptpConf(addr, "198.51.100.254"), node: b.node}
				}
				return round("ptp", invs, 2)
			},
		)
	})
}

// pool runs invs with at most n in flight; check, when set, vets each
// result.
func (b *bench) pool(n int, invs []invocation, check func(outcome) error) error {
	work := make(chan invocation)
	errs := make(chan error, len(invs))
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for inv := range work {
				out, err := inv.run(b.ctx)
				if err == nil && check != nil {
					err = check(out)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	for _, inv := range invs {
		work <- inv
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when none failed
}

// openPath opens a namespace this tool did not create (ratchet's parking
// namespace).
func openPath(path string) (*nsRef, error) {
	h, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	return &nsRef{Name: filepath.Base(path), Path: path, h: h}, nil
}

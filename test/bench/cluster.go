package main

// ---- cross-node: one pod link between pods on two nodes, with etcd ----

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// etcdBinary is Debian's etcd (package etcd-server), which make deps
// installs.
const etcdBinary = "/usr/bin/etcd"

// clusterEnv is two simulated nodes on an underlay, an etcd on node A's
// underlay address, and a ratchetd on each node: processes this tool
// started, and stops by PID.
type clusterEnv struct {
	nodes   [2]*nsRef
	stores  [2]string
	sockets [2]string
	procs   []*exec.Cmd
}

const (
	benchEtcd   = "http://192.0.2.1:23790"
	benchPrefix = "/ratchet-bench"
)

func (b *bench) startCluster() (*clusterEnv, error) {
	c := &clusterEnv{}
	ok := false
	defer func() {
		if !ok {
			c.stop(b)
		}
	}()
	for i, tag := range []string{"cnodeA", "cnodeB"} {
		n, err := b.ns.create(tag)
		if err != nil {
			return nil, err
		}
		c.nodes[i] = n
		c.stores[i] = b.storeDir(fmt.Sprintf("cross%d", i))
		c.sockets[i] = filepath.Join(b.tmp, fmt.Sprintf("ratchetd-%d.sock", i))
	}
	if err := underlay(c.nodes[0], c.nodes[1]); err != nil {
		return nil, err
	}
	// Node A's agent reaches etcd at node A's own address, which goes
	// through lo.
	for _, n := range c.nodes {
		if err := link.SetLoopbackUp(n.Path); err != nil {
			return nil, err
		}
	}
	// etcd's data on tmpfs: what a WAL on a fast SSD costs, not this VM's
	// virtual disk (see docs/performance.md).
	data, err := os.MkdirTemp("/dev/shm", "ratchet-bench-etcd-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			os.RemoveAll(data)
		}
	}()
	if err := c.start(b, c.nodes[0], filepath.Join(b.tmp, "etcd.log"), etcdBinary,
		"--name", "bench", "--data-dir", data,
		"--listen-client-urls", benchEtcd, "--advertise-client-urls", benchEtcd,
		"--listen-peer-urls", "http://192.0.2.1:23800", "--initial-advertise-peer-urls", "http://192.0.2.1:23800",
		"--initial-cluster", "bench=http://192.0.2.1:23800", "--log-level", "warn", "--logger", "zap"); err != nil {
		return nil, err
	}
	b.etcdData = data
	for i, n := range c.nodes {
		if err := c.start(b, n, filepath.Join(b.tmp, fmt.Sprintf("ratchetd-%d.log", i)), b.bins.ratchetd,
			"--node", fmt.Sprintf("node%d", i), "--etcd-endpoints", benchEtcd, "--etcd-insecure", "--prefix", benchPrefix,
			"--store-dir", c.stores[i], "--socket", c.sockets[i], "--vtep-dev", "underlay0"); err != nil {
			return nil, err
		}
	}
	for i := range c.nodes {
		if err := waitHealthy(b.ctx, c.sockets[i], fmt.Sprintf("node%d", i)); err != nil {
			etcdLog, _ := os.ReadFile(filepath.Join(b.tmp, "etcd.log"))
			agentLog, _ := os.ReadFile(filepath.Join(b.tmp, fmt.Sprintf("ratchetd-%d.log", i)))
			return nil, fmt.Errorf("%w\netcd log: %s\nratchetd log: %s", err, tail(string(etcdLog), 1500), tail(string(agentLog), 1500))
		}
	}
	ok = true
	return c, nil
}

// start runs a process on node n, its output in logFile.
func (c *clusterEnv) start(b *bench, n *nsRef, logFile, bin string, args ...string) error {
	log, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := inNode(n, cmd.Start); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	c.procs = append(c.procs, cmd)
	return nil
}

// waitHealthy waits until the agent at socket answers and reaches etcd.
func waitHealthy(ctx context.Context, socket, node string) error {
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = agentapi.Call(cctx, socket, &agentapi.Request{Op: agentapi.OpHealth, Node: node, Prefix: benchPrefix})
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("ratchetd on %s not healthy after 20s: %w", node, err)
}

// stop ends the processes this tool started (by PID) and the nodes.
func (c *clusterEnv) stop(b *bench) {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	for _, n := range c.nodes {
		_ = b.ns.remove(n)
	}
	if b.etcdData != "" {
		os.RemoveAll(b.etcdData)
	}
}

func (c *clusterEnv) conf(i int, spec podLinkSpec, side int, peer string) []byte {
	return ratchetConf(c.stores[i], map[string]any{
		"cniVersion": "1.1.0",
		"store": map[string]any{"type": "etcd", "dir": c.stores[i], "endpoints": []string{benchEtcd},
			"insecure": true, "prefix": benchPrefix, "agentSocket": c.sockets[i]},
		"node":          map[string]any{"name": fmt.Sprintf("node%d", i)},
		"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
		"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": spec.annotation(side, peer)}},
	})
}

// crossNode times the ADD and DEL of two pods with one pod link between
// them on two nodes (etcd store, ratchetd on each node), interleaved with
// the same two pods on one node (local store): the bar compares the two.
func (b *bench) crossNode(iters int) error {
	c, err := b.startCluster()
	if err != nil {
		return err
	}
	defer c.stop(b)
	spec := podLinkSpec{n: 1, ips: true}
	local := b.storeDir("crosslocal")
	localConf := func(side int, peer string) []byte {
		return ratchetConf(local, map[string]any{
			"capabilities":  map[string]any{"io.kubernetes.cri.pod-annotations": true},
			"runtimeConfig": map[string]any{"io.kubernetes.cri.pod-annotations": map[string]string{"ratchet.cni.dev/links": spec.annotation(side, peer)}},
		})
	}
	inv := func(pod string, n *nsRef, podNS *nsRef, conf []byte) invocation {
		return invocation{bin: b.bins.ratchet, command: "ADD", containerID: "sandbox-" + pod, netns: podNS.Path,
			args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + pod, path: b.bins.dir, conf: conf, node: n}
	}
	pair := func(prefix string, ia, ib invocation, crossNode bool) error {
		out, err := b.timed(prefix+"ADD first", ia)
		if err != nil {
			return err
		}
		if err := expect(out, 1, prefix+"ADD (first pod)"); err != nil {
			return err
		}
		if out, err = b.timed(prefix+"ADD second", ib); err != nil {
			return err
		}
		if err := expect(out, 1, prefix+"ADD (second pod)"); err != nil {
			return err
		}
		if crossNode {
			// The agents complete the tunnel after ADD: wait for carrier,
			// untimed, so that their work does not run into the DELs.
			if err := waitCarrier(ia.netns, spec.ifname(0, 0), 10*time.Second); err != nil {
				return err
			}
		}
		ia.command, ib.command = "DEL", "DEL"
		if _, err := b.timed(prefix+"DEL first", ia); err != nil {
			return err
		}
		if _, err = b.timed(prefix+"DEL last", ib); err != nil {
			return err
		}
		if crossNode {
			// And they remove the tunnels after DEL: wait for that too, so
			// that the next iteration starts from a quiet node, as the
			// one-node variant does (its DEL removes all it made itself).
			return c.waitNoTunnels(b, 10*time.Second)
		}
		return nil
	}
	return b.runIterations("cross-node pod link", iters, func(iter int) error {
		it := b.newIteration(iter)
		defer it.done()
		podA, podB := fmt.Sprintf("xa%d", iter), fmt.Sprintf("xb%d", iter)
		return interleave(iter,
			func() error {
				a, err := it.netns("xa")
				if err != nil {
					return err
				}
				bb, err := it.netns("xb")
				if err != nil {
					return err
				}
				return pair("cross/ratchet ", inv(podA, c.nodes[0], a, c.conf(0, spec, 0, podB)),
					inv(podB, c.nodes[1], bb, c.conf(1, spec, 1, podA)), true)
			},
			func() error {
				a, err := it.netns("la")
				if err != nil {
					return err
				}
				bb, err := it.netns("lb")
				if err != nil {
					return err
				}
				la, lb := "l"+podA, "l"+podB
				return pair("cross/local ", inv(la, b.node, a, localConf(0, lb)), inv(lb, b.node, bb, localConf(1, la)), false)
			},
		)
	})
}

// waitNoTunnels waits until neither node's parking namespace holds a
// tunnel.
func (c *clusterEnv) waitNoTunnels(b *bench, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, dir := range c.stores {
		park, err := openPath(filepath.Join(netnsDir, parking.Name(dir)))
		if err != nil {
			continue // no pod link made there yet
		}
		h, err := handleIn(park)
		park.h.Close()
		if err != nil {
			return err
		}
		for {
			links, err := h.LinkList()
			if err != nil {
				h.Close()
				return err
			}
			tunnels := 0
			for _, l := range links {
				if l.Type() == "vxlan" {
					tunnels++
				}
			}
			if tunnels == 0 {
				break
			}
			if time.Now().After(deadline) {
				h.Close()
				return fmt.Errorf("cross-node link: %d tunnels left %v after both DELs: the agents did not remove them", tunnels, timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
		h.Close()
	}
	return nil
}

// waitCarrier waits until ifName in the namespace at path has a carrier.
func waitCarrier(path, ifName string, timeout time.Duration) error {
	n, err := openPath(path)
	if err != nil {
		return err
	}
	defer n.h.Close()
	h, err := handleIn(n)
	if err != nil {
		return err
	}
	defer h.Close()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		l, err := h.LinkByName(ifName)
		if err != nil {
			return err
		}
		if l.Attrs().OperState == netlink.OperUp {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("cross-node link: no carrier on " + ifName + " within " + timeout.String() + ": the agents made no tunnel")
}

// Package agent is ratchetd, the node agent of a multi-node cluster. It
// holds the node's etcd connection and a watch on the cluster registry,
// answers the plugin on a unix socket, and makes the tunnels of cross-node
// pod links: for each pod link end on this node whose peer is on another
// node, a VXLAN netdev born in the parking namespace (its UDP socket on the
// node's underlay) and stitched to the end's parked veth. When the peer
// moves, only that tunnel changes; the pod's interface never does.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Registry is what the agent needs of the cluster store: the registry,
// a health probe and a watch. etcdstore.Etcd is one; ratchetd's main wires
// it in, so that the agent depends on the store's interface, not on etcd.
type Registry interface {
	store.Registry
	Health(ctx context.Context) error
	Watch(ctx context.Context) <-chan store.Change
	// Nodes returns every announced node: their VTEPs, and no other
	// address, may reach the tunnel port (firewall.go).
	Nodes(ctx context.Context) ([]*store.NodeRecord, error)
	// Connected says, without a round trip, whether a write would likely
	// go through now.
	Connected() bool
	// LinkSettings, AllLinkSettings and PutLinkSettings keep cross-node
	// links' run-time settings (settings.go), in the order of the link
	// id's ends; a write compares the revision a read returned.
	LinkSettings(ctx context.Context, id string) (*store.Settings, int64, error)
	AllLinkSettings(ctx context.Context) (map[string]*store.Settings, error)
	PutLinkSettings(ctx context.Context, id string, s *store.Settings, rev int64) error
	// AddedLink, AddedLinks, PutAddedLink and DeleteAddedLink keep the
	// records of cross-node links `ratchetctl link add` made (added.go).
	AddedLink(ctx context.Context, id string) (*store.AddedLink, int64, error)
	AddedLinks(ctx context.Context) (map[string]*store.AddedLink, error)
	PutAddedLink(ctx context.Context, id string, a *store.AddedLink, rev int64) error
	DeleteAddedLink(ctx context.Context, id string) error
}

// Config is the agent's configuration.
type Config struct {
	// Node is this node's name, as the plugin's node.name.
	Node string
	// Prefix is the cluster's key prefix, as the plugin's store.prefix.
	Prefix string
	// NodeNS is the node's namespace, where the underlay is; nil means the
	// agent's own.
	NodeNS ns.NetNS
	// VtepDev and VtepIP are the underlay device and address; empty means
	// the default route's device and its first address.
	VtepDev string
	VtepIP  net.IP
	// Port is the VXLAN UDP port (0: the default, 4789); MTU the tunnels'
	// MTU (0: the underlay's less the encapsulation).
	Port int
	MTU  int
	// NoFirewall runs the agent without its tunnel filter (firewall.go):
	// any address that reaches Port can then inject frames into the
	// node's cross-node links. Only for kernels without nf_tables.
	NoFirewall bool
	// VNIFirst and VNILast bound VNI allocation.
	VNIFirst, VNILast uint32
	// StoreDir is the node's local store, shared with the plugin.
	StoreDir string
	// Socket is where the plugin reaches the agent.
	Socket string
	// Resync is how often everything is checked again (drift repair);
	// CallTimeout bounds each request the agent serves.
	Resync      time.Duration
	CallTimeout time.Duration
	// HealthInterval is how often etcd and the parking namespace are
	// checked (default 5s); ReconcileFailures how many reconcile passes
	// in a row must fail for the agent to say it is not ready (default 3).
	// See health.go.
	HealthInterval    time.Duration
	ReconcileFailures int
	Log               *slog.Logger
}

// Agent is a running node agent.
type Agent struct {
	cfg Config
	reg Registry
	log *slog.Logger

	kick chan struct{}
	// writes are the plugin's registrations on their way to etcd.
	writes *writer

	mu sync.Mutex
	// full asks the next reconcile to re-read everything; dirty are the
	// ends ("pod|ifName") whose links it must look at.
	full  bool
	dirty map[endID]bool
	// added are the links whose added-link record changed (added.go).
	added map[string]bool
	// reconciled counts finished reconciles, for Settle.
	reconciled uint64

	// view is the loop's copy of the registry.
	view *registryView

	// fw is the tunnel filter; nil with Config.NoFirewall.
	fw *firewall
	// health is what the agent knows of its own health (health.go).
	health healthState
}

// New returns an agent for cfg on reg; Run starts it. A nil reg is the
// local mode of a single node, whose plugin uses only the local store:
// Run then makes no tunnel and serves no socket, and only checks the
// parking namespace (Health, Stats), for ratchetd's health and metrics.
func New(cfg Config, reg Registry) (*Agent, error) {
	if cfg.Node == "" {
		return nil, errors.New("agent: no node name")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if cfg.Resync == 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.CallTimeout == 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.Port == 0 {
		cfg.Port = netconf.DefaultVXLANPort
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = defaultHealthInterval
	}
	if cfg.ReconcileFailures <= 0 {
		cfg.ReconcileFailures = defaultReconcileFailures
	}
	if cfg.VNIFirst == 0 {
		cfg.VNIFirst, cfg.VNILast = netconf.DefaultVNIFirst, netconf.MaxVNI
	}
	a := &Agent{cfg: cfg, reg: reg, log: cfg.Log, kick: make(chan struct{}, 1), full: true, dirty: map[endID]bool{},
		added: map[string]bool{}, writes: newWriter(cfg.CallTimeout)}
	if !cfg.NoFirewall {
		a.fw = &firewall{nodeNS: cfg.NodeNS, port: uint16(cfg.Port)}
	}
	return a, nil
}

// Run serves the plugin and keeps the node's tunnels right until ctx ends.
// The socket is ready when Run has called ready (which may be nil).
func (a *Agent) Run(ctx context.Context, ready func()) error {
	if a.reg == nil {
		return a.runLocal(ctx, ready)
	}
	under, err := a.underlay()
	if err != nil {
		return err
	}
	ln, sock, err := listen(a.cfg.Socket)
	if err != nil {
		return err
	}
	defer removeSocket(a.cfg.Socket, sock)
	if a.fw != nil {
		// Once the socket is ours (a second agent must not rebuild the
		// running one's table), before any tunnel: until the first
		// reconcile reads the nodes, the port is open only to those an
		// earlier agent let in.
		if err := a.fw.install(); err != nil {
			ln.Close()
			return fmt.Errorf("%w (only where the kernel cannot filter, run without it: Config.NoFirewall, ratchetd --no-tunnel-filter)", err)
		}
		a.log.Info("tunnel filter installed", "table", "inet "+FirewallTable, "port", a.cfg.Port)
	} else {
		a.log.Warn("tunnel filter off: any address that reaches the VXLAN port can inject frames into cross-node links", "port", a.cfg.Port)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.startHealth(ctx)
	wg.Add(5)
	go func() {
		defer wg.Done()
		a.monitor(ctx)
	}()
	go func() {
		defer wg.Done()
		a.writes.run(ctx, func(err error) { a.log.Error("registry write refused", "error", err) })
	}()
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		defer wg.Done()
		a.serve(ctx, ln, under)
	}()
	go func() {
		defer wg.Done()
		a.watch(ctx)
	}()
	if ready != nil {
		ready()
	}
	a.log.Info("ratchetd running", "node", a.cfg.Node, "vtep", under.ip, "dev", under.dev, "mtu", under.mtu, "socket", a.cfg.Socket)
	a.loop(ctx, under)
	return nil
}

// runLocal is Run without a registry: the health checks, every
// HealthInterval, are the loop whose passes say the agent is live.
func (a *Agent) runLocal(ctx context.Context, ready func()) error {
	a.startHealth(ctx)
	if ready != nil {
		ready()
	}
	a.log.Info("ratchetd running on the local store only: no tunnels", "node", a.cfg.Node, "store", a.cfg.StoreDir)
	tick := time.NewTicker(a.cfg.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			a.checkParking(ctx)
			a.health.mu.Lock()
			a.health.passEnd = time.Now()
			a.health.mu.Unlock()
		}
	}
}

// listen opens the socket: its directory is 0700, the socket 0600, as only
// the plugin (root) may talk to the agent; serve checks each caller too.
func listen(path string) (net.Listener, os.FileInfo, error) {
	if err := checkSocketDir(filepath.Dir(path)); err != nil {
		return nil, nil, err
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		// Another agent that still answers keeps its socket; one left by
		// an agent that died is in the way.
		if c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"}); err == nil {
			c.Close()
			return nil, nil, fmt.Errorf("another ratchetd serves %s", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, nil, err
	}
	// Listen leaves the file to us: removing it is ours to do.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, fi, nil
}

// removeSocket removes the agent's socket, unless another agent has put
// its own in its place since.
func removeSocket(path string, ours os.FileInfo) {
	if fi, err := os.Stat(path); err == nil && os.SameFile(fi, ours) {
		_ = os.Remove(path)
	}
}

func (a *Agent) serve(ctx context.Context, ln net.Listener, under *underlay) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				a.log.Error("accept", "error", err)
			}
			return
		}
		if uid, err := checkPeer(conn); err != nil {
			a.log.Warn("refused a caller on the socket", "uid", uid, "error", err)
			conn.Close()
			continue
		}
		go agentapi.Serve(conn, a.cfg.CallTimeout+time.Second, func(req *agentapi.Request) *agentapi.Response {
			return a.handle(ctx, req, under)
		})
	}
}

// handle answers one plugin request.
func (a *Agent) handle(ctx context.Context, req *agentapi.Request, under *underlay) *agentapi.Response {
	if req.Op == agentapi.OpHealth {
		return a.answerHealth(ctx, req, under)
	}
	if req.Node == "" && req.Prefix == "" {
		// ratchetctl knows neither; the socket is the node's.
		switch req.Op {
		case agentapi.OpLinkSettings:
			return a.linkSettings(ctx, req)
		case agentapi.OpLinkAdd:
			return a.linkAdd(ctx, req, under)
		case agentapi.OpLinkDel:
			return a.linkDel(ctx, req)
		}
	}
	if req.Node != a.cfg.Node {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("node.name %q, but this is the agent of node %q", req.Node, a.cfg.Node))
	}
	if req.Prefix != a.cfg.Prefix {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("store.prefix %q, but this agent serves the cluster at %q", req.Prefix, a.cfg.Prefix))
	}
	var err error
	switch req.Op {
	case agentapi.OpRegister:
		ends := make([]*store.EndRecord, len(req.Ends))
		for i, e := range req.Ends {
			if e == nil {
				return failed(types.ErrDecodingFailure, "register: an end is null")
			}
			if e.Node != a.cfg.Node {
				return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("end %s|%s is for node %q", e.Pod, e.IfName, e.Node))
			}
			ends[i] = endRecord(e)
		}
		if resp := a.refuseCrossNode(ctx, ends); resp != nil {
			return resp
		}
		w := a.writes.enqueue(func(ctx context.Context) error { return a.reg.RegisterEnds(ctx, ends) })
		if !a.reg.Connected() {
			// Not known to be reachable: the ADD waits for the write (see
			// writer.go), and fails if it does not go through.
			select {
			case err = <-w.done:
			case <-time.After(a.cfg.CallTimeout):
				err = fmt.Errorf("%w: no answer within %v", store.ErrUnavailable, a.cfg.CallTimeout)
			}
			if err != nil && len(ends) > 0 {
				// The ADD fails and undoes itself: its registration must
				// not be made later. Dropped if not made yet; withdrawn
				// behind it if it was.
				w.abandoned.Store(true)
				a.writes.enqueue(func(ctx context.Context) error {
					return a.reg.UnregisterEnds(ctx, a.cfg.Node, ends[0].Attachment, ends[0].Pod, endNames(ends))
				})
			}
		}
	case agentapi.OpLinkSettings:
		return a.linkSettings(ctx, req)
	case agentapi.OpLinkAdd:
		return a.linkAdd(ctx, req, under)
	case agentapi.OpLinkDel:
		return a.linkDel(ctx, req)
	case agentapi.OpUnregister:
		// DEL is best effort: it never waits for etcd.
		a.writes.enqueue(func(ctx context.Context) error {
			return a.reg.UnregisterEnds(ctx, a.cfg.Node, attachmentKey(req.Attachment), req.Pod, req.IfNames)
		})
	default:
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("unknown operation %q", req.Op))
	}
	if err != nil {
		if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
			return failed(types.ErrTryAgainLater, "cluster store unreachable: "+err.Error())
		}
		return failed(102, err.Error())
	}
	return &agentapi.Response{MTU: under.mtu}
}

// retry runs op until it succeeds, fails for good, or timeout passes. A
// cluster that is electing a leader (a member died) answers "request
// timed out" for a moment; every operation is safe to repeat.
func retry(ctx context.Context, timeout time.Duration, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := op(ctx)
		if err == nil || !errors.Is(err, store.ErrUnavailable) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// endRecord is the registry's record of an end the plugin announced.
func endRecord(e *agentapi.End) *store.EndRecord {
	return &store.EndRecord{
		Pod: e.Pod, IfName: e.IfName, PeerPod: e.PeerPod, PeerIfName: e.PeerIfName,
		Node: e.Node, Attachment: attachmentKey(e.Attachment),
	}
}

// attachmentKey is the store's key of the attachment the plugin named.
func attachmentKey(a agentapi.Attachment) store.AttachmentKey {
	return store.AttachmentKey{Network: a.Network, ContainerID: a.ContainerID, IfName: a.IfName}
}

// endNames returns the interface names of ends.
func endNames(ends []*store.EndRecord) []string {
	names := make([]string, len(ends))
	for i, e := range ends {
		names[i] = e.IfName
	}
	return names
}

func failed(code uint, msg string) *agentapi.Response {
	return &agentapi.Response{Code: code, Error: msg}
}

// watch turns registry changes into work for the reconcile loop.
func (a *Agent) watch(ctx context.Context) {
	for c := range a.reg.Watch(ctx) {
		switch {
		case c.Resync, c.Kind == "node" && c.Node != a.cfg.Node:
			// Another node moved its VTEP (or appeared): its tunnels may
			// need a new remote. Our own record's echo needs nothing.
			a.markFull()
		case c.Kind == "end":
			a.markDirty(endKey(c.Pod, c.IfName))
		case c.Kind == "settings":
			a.markLink(c.LinkID)
		case c.Kind == "added":
			a.markAdded(c.LinkID)
		case c.Kind == "vni" && c.Deleted:
			// A released VNI: the agent that allocates a VNI makes its own
			// tunnel at once, so only releases need a look.
			a.markFull()
		}
	}
}

func (a *Agent) markDirty(end endID) {
	a.mu.Lock()
	a.dirty[end] = true
	a.mu.Unlock()
	a.poke()
}

// markAdded asks the next reconcile to look at added link id's record.
func (a *Agent) markAdded(id string) {
	a.mu.Lock()
	a.added[id] = true
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) markFull() {
	a.mu.Lock()
	a.full = true
	a.mu.Unlock()
	a.poke()
}

func (a *Agent) poke() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// gather is how long the loop lets changes gather before it acts on them:
// a pod's many links, a pod and its peer registering one after the other,
// a burst of ADDs on a node, each become one pass instead of many. It also
// keeps the agent's own work (the store's lock, the kernel's RTNL, CPU)
// out of the way of the ADDs that caused it: a shorter delay made an ADD
// right after its peer's on a small node measurably slower than the same
// ADD on one node (docs/performance.md, the cross-node scenario). A tunnel
// is made that much later, which nothing waits for.
const gather = 20 * time.Millisecond

// loop reconciles whenever there is work, and everything every Resync.
func (a *Agent) loop(ctx context.Context, under *underlay) {
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.markFull()
			continue
		case <-retry.C:
		case <-a.kick:
		}
		time.Sleep(gather)
		a.mu.Lock()
		full, dirty, added := a.full, a.dirty, a.added
		a.full, a.dirty, a.added = false, map[endID]bool{}, map[string]bool{}
		a.mu.Unlock()
		a.noteStart()
		// Added links' ends first, so that the tunnels of ends made
		// now follow in the same pass; one that fails holds up no tunnel.
		err := errors.Join(a.syncAdded(ctx, under, full, added), a.reconcile(ctx, under, full, dirty))
		if err != nil && ctx.Err() != nil {
			return
		}
		a.noteReconcile(err)
		if err != nil {
			a.log.Warn("reconcile failed; retrying", "error", err, "in", backoff)
			a.mu.Lock()
			a.full = a.full || full
			for k := range dirty {
				a.dirty[k] = true
			}
			for id := range added {
				a.added[id] = true
			}
			a.mu.Unlock()
			retry.Reset(backoff)
			backoff = min(2*backoff, a.cfg.Resync)
		} else {
			backoff = time.Second
		}
		a.mu.Lock()
		a.reconciled++
		a.mu.Unlock()
	}
}

// Settle waits until every queued registry write is done and a reconcile
// has started and finished after the call, with no work left (tests use
// it to wait for tunnels).
func (a *Agent) Settle(ctx context.Context) error {
	a.markFull()
	a.mu.Lock()
	start := a.reconciled
	a.mu.Unlock()
	for {
		a.mu.Lock()
		done := a.reconciled > start && !a.full && len(a.dirty) == 0 && len(a.added) == 0 && a.writes.pending() == 0
		a.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// The agent's health: a node whose agent cannot make tunnels must say so
// where Kubernetes and the runtime look (readiness, CNI STATUS, ADD's
// code 11), not only in a log line, or its pods come up Ready with links
// that carry nothing. Three checks:
//
//   - etcd: the registry answers within the call timeout (retried for that
//     long, as a leader election makes it refuse for a moment);
//   - parking: the parking namespace the plugin recorded opens here and is
//     the same namespace (link.NetnsID) the plugin made. It is not when
//     ratchetd's view of the netns directory is a mount that does not
//     receive the host's later mounts: the plugin's pin shows here as the
//     bare file under it;
//   - reconcile: the last passes did not all fail.
//
// etcd and parking are checked at start-up, every HealthInterval, and
// again for each health request; reconcile is noted by the loop.

// Health defaults.
const (
	defaultHealthInterval    = 5 * time.Second
	defaultReconcileFailures = 3
)

// Check names, as agentapi.Check.Name.
const (
	CheckEtcd      = "etcd"
	CheckParking   = "parking"
	CheckReconcile = "reconcile"

	checkEtcd      = CheckEtcd
	checkParking   = CheckParking
	checkReconcile = CheckReconcile
)

// healthState is what the agent knows of its health; its own lock, as the
// loop and the server note and read it at any time.
type healthState struct {
	mu     sync.Mutex
	checks map[string]*agentapi.Check
	// fails counts the reconcile passes that failed in a row.
	fails int
	// passStart and passEnd bound the loop's last pass, for liveness.
	passStart, passEnd time.Time
	// propagation, when not "", says why the netns directory's mount
	// does not receive the host's mounts (found at start-up).
	propagation string
	// names are the checks this agent makes, in the order it reports
	// them: without a registry (local mode) there is no etcd to check,
	// nor tunnels to reconcile.
	names []string
	// passes and failures count the reconcile passes and those that
	// failed, since the start, for the metrics (Stats).
	passes, failures uint64
}

func (h *healthState) init(now time.Time, names ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.checks = map[string]*agentapi.Check{}
	h.names = names
	for _, name := range names {
		h.checks[name] = &agentapi.Check{Name: name, OK: true, Since: now}
	}
	h.passEnd = now
}

// Stats is what the agent counts of its own work, for the metrics.
type Stats struct {
	// Checks are the agent's health checks now, as Health's.
	Checks []agentapi.Check
	// Ready and Live are Health's.
	Ready, Live bool
	// Passes and Failures count the reconcile passes since the start and
	// those that failed; LastPass is when the last one ended (zero: none
	// yet).
	Passes, Failures uint64
	LastPass         time.Time
}

// Stats returns the agent's counters and checks now, without checking
// anything again.
func (a *Agent) Stats() Stats {
	h := a.Health()
	a.health.mu.Lock()
	defer a.health.mu.Unlock()
	s := Stats{Checks: h.Checks, Ready: h.Ready, Live: h.Live, Passes: a.health.passes, Failures: a.health.failures}
	if a.health.passes > 0 {
		s.LastPass = a.health.passEnd
	}
	return s
}

// set records the outcome of check name: reason "" is OK.
func (h *healthState) set(name, reason string) (changed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.checks[name]
	if c == nil {
		return false
	}
	ok := reason == ""
	changed = c.OK != ok
	if changed {
		c.Since = time.Now()
	}
	c.OK, c.Reason = ok, reason
	return changed
}

func (h *healthState) ok(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checks[name] == nil || h.checks[name].OK
}

// Health returns what the agent knows of its health now, without checking
// anything again: what /readyz and /healthz answer.
func (a *Agent) Health() agentapi.Health {
	h := &a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	out := agentapi.Health{Ready: true, Live: true}
	if h.checks == nil {
		return agentapi.Health{Checks: []agentapi.Check{{Name: "start", Reason: "ratchetd is starting"}}}
	}
	for _, name := range h.names {
		c := h.checks[name]
		if c == nil {
			// Run has not started: nothing is known yet.
			return agentapi.Health{Checks: []agentapi.Check{{Name: "start", Reason: "ratchetd is starting"}}}
		}
		out.Checks = append(out.Checks, *c)
		out.Ready = out.Ready && c.OK
	}
	now := time.Now()
	stuck := max(5*time.Minute, 10*a.cfg.Resync)
	if h.passStart.After(h.passEnd) {
		out.Live = now.Sub(h.passStart) < stuck
	} else {
		// The loop passes at least every Resync (its retries back off up
		// to that); a pass that never comes means a loop that is stuck.
		out.Live = now.Sub(h.passEnd) < 2*a.cfg.Resync+stuck
	}
	return out
}

// noteStart and noteReconcile are the loop's marks around each pass.
func (a *Agent) noteStart() {
	a.health.mu.Lock()
	a.health.passStart = time.Now()
	a.health.mu.Unlock()
}

func (a *Agent) noteReconcile(err error) {
	h := &a.health
	h.mu.Lock()
	h.passEnd = time.Now()
	h.passes++
	if err == nil {
		h.fails = 0
	} else {
		h.fails++
		h.failures++
	}
	fails := h.fails
	h.mu.Unlock()
	reason := ""
	if fails >= a.cfg.ReconcileFailures {
		reason = fmt.Sprintf("the last %d reconcile passes failed, the last with: %v", fails, err)
	}
	if h.set(checkReconcile, reason) && reason != "" {
		a.log.Error("ratchetd is not ready: its reconcile passes keep failing; tunnels are not made", "failures", fails, "error", err)
	}
}

// checkHealth checks etcd and the parking namespace again.
func (a *Agent) checkHealth(ctx context.Context) {
	if a.reg != nil {
		a.checkEtcd(ctx)
	}
	a.checkParking(ctx)
}

func (a *Agent) checkEtcd(ctx context.Context) {
	reason := ""
	if err := retry(ctx, a.cfg.CallTimeout, a.reg.Health); err != nil {
		if ctx.Err() != nil {
			return
		}
		reason = fmt.Sprintf("the cluster store does not answer within %v: %v (check the etcd endpoints, TLS files and the network path to etcd)", a.cfg.CallTimeout, err)
	}
	a.noteEtcd(reason)
}

// noteEtcd records the etcd check's outcome: reason "" is OK.
func (a *Agent) noteEtcd(reason string) {
	if a.health.set(checkEtcd, reason) {
		if reason != "" {
			a.log.Error("ratchetd is not ready", "check", checkEtcd, "reason", reason)
		} else {
			a.log.Info("the cluster store answers again")
			// What failed while it was gone can be done now, not at the
			// end of the loop's back-off.
			a.markFull()
		}
	}
}

func (a *Agent) checkParking(ctx context.Context) {
	reason, err := a.parkingReason(ctx)
	if err != nil {
		// The local store could not be read (its lock is busy): this
		// says nothing of the namespace; keep what is known.
		a.log.Debug("parking namespace check skipped", "error", err)
		return
	}
	if a.health.set(checkParking, reason) {
		if reason != "" {
			a.log.Error("ratchetd is not ready", "check", checkParking, "reason", reason)
		} else {
			a.log.Info("the parking namespace is visible again")
			a.markFull()
		}
	}
}

// parkingReason returns why the agent cannot use the parking namespace the
// plugin recorded, or "" when it can (or there is none yet). err says the
// store could not be read.
func (a *Agent) parkingReason(ctx context.Context) (reason string, err error) {
	var path, id string
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	err = a.withNodeWithin(ctx, a.cfg.CallTimeout, func(st *store.Local) (err error) {
		if path, err = st.Meta(ctx, parking.MetaKey); err != nil {
			return err
		}
		id, err = st.Meta(ctx, parking.IDKey)
		return err
	})
	if err != nil || path == "" {
		return "", err
	}
	park, err := ns.GetNS(path)
	var gone ns.NSPathNotExistErr
	if errors.As(err, &gone) {
		// Gone with a reboot (the plugin makes it again at the next ADD),
		// or never seen here: only the first is harmless, and the file
		// stays where the plugin pinned it, even under a mount that does
		// not propagate, so a missing file is the reboot.
		return "", nil
	}
	if err != nil {
		return fmt.Sprintf("cannot open the parking netns %s that the plugin uses: %v; %s", path, err, a.propagationHint()), nil
	}
	defer park.Close()
	if id == "" {
		return "", nil // recorded by a plugin that did not note its identity
	}
	got, err := link.IDOf(park)
	if err != nil {
		return fmt.Sprintf("cannot identify the parking netns %s: %v", path, err), nil
	}
	if parking.FormatID(got) != id {
		return fmt.Sprintf("%s is namespace %s here, but the plugin made namespace %s there: ratchetd sees a stale pin; %s",
			path, parking.FormatID(got), id, a.propagationHint()), nil
	}
	return "", nil
}

// propagationHint says what to fix when the agent does not see the
// plugin's pin.
func (a *Agent) propagationHint() string {
	a.health.mu.Lock()
	p := a.health.propagation
	a.health.mu.Unlock()
	if p == "" {
		p = fmt.Sprintf("ratchetd's view of %s does not show what the plugin pinned there after ratchetd started", link.NetnsDir)
	}
	return p + "; fix: give ratchetd the host's " + link.NetnsDir + " with mount propagation (Kubernetes: the volume's " +
		"mountPropagation: HostToContainer, and a shared /run on the host: `mount --make-rshared /run`), then restart ratchetd " +
		"(docs/multinode.md, node requirements)"
}

// withNodeWithin is withNode with the lock awaited at most wait (0: as
// long as it takes).
func (a *Agent) withNodeWithin(ctx context.Context, wait time.Duration, fn func(st *store.Local) error) error {
	lock, err := store.LockNode(ctx, a.cfg.StoreDir, wait)
	if err != nil {
		return err
	}
	defer func() {
		if err := lock.Unlock(); err != nil {
			a.log.Error("release the node lock", "error", err)
		}
	}()
	st, err := lock.Open()
	if err != nil {
		return err
	}
	err = fn(st)
	return errors.Join(err, st.Close())
}

// startHealth checks everything once, before the agent says it runs, and
// notes how the netns directory is mounted.
func (a *Agent) startHealth(ctx context.Context) {
	if a.reg == nil {
		a.health.init(time.Now(), checkParking)
	} else {
		a.health.init(time.Now(), checkEtcd, checkParking, checkReconcile)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		if dir, err := filepath.EvalSymlinks(link.NetnsDir); err == nil {
			if mnt, shared := mountPropagation(data, dir); !shared {
				a.health.propagation = fmt.Sprintf("ratchetd's %s (mount %s) is a private mount: pins made on the host after ratchetd started do not show here",
					link.NetnsDir, mnt)
				a.log.Warn("the netns directory's mount does not receive the host's mounts: parking namespaces made after ratchetd started will not be visible to it",
					"dir", link.NetnsDir, "mount", mnt)
			}
		}
	}
	a.checkHealth(ctx)
}

// monitor checks etcd and the parking namespace every HealthInterval.
func (a *Agent) monitor(ctx context.Context) {
	tick := time.NewTicker(a.cfg.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			a.checkHealth(ctx)
		}
	}
}

// answerHealth answers OpHealth. It checks etcd and the parking namespace
// again, and when only the reconcile passes failed, waits (a call timeout
// at most) for one more pass: STATUS right after an outage ends then says
// how things are, not how they were.
func (a *Agent) answerHealth(ctx context.Context, req *agentapi.Request, under *underlay) *agentapi.Response {
	if req.Node != "" && req.Node != a.cfg.Node {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("node.name %q, but this is the agent of node %q", req.Node, a.cfg.Node))
	}
	if (req.Node != "" || req.Prefix != "") && req.Prefix != a.cfg.Prefix {
		return failed(types.ErrInvalidNetworkConfig, fmt.Sprintf("store.prefix %q, but this agent serves the cluster at %q", req.Prefix, a.cfg.Prefix))
	}
	a.checkHealth(ctx)
	if !a.health.ok(checkReconcile) && a.health.ok(checkEtcd) && a.health.ok(checkParking) {
		a.mu.Lock()
		start := a.reconciled
		a.mu.Unlock()
		a.markFull()
		deadline := time.Now().Add(a.cfg.CallTimeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			a.mu.Lock()
			done := a.reconciled > start
			a.mu.Unlock()
			if done {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	h := a.Health()
	resp := &agentapi.Response{MTU: under.mtu, Health: &h}
	if !h.Ready {
		resp.Code, resp.Error = types.ErrPluginNotAvailable, "not ready: "+h.Reason()
	}
	return resp
}

// refuseCrossNode fails the registration of ends whose peers are on other
// nodes while the agent is not ready (code 11, with the reason): their
// tunnels could not be made, and an ADD that succeeded would leave a pod
// Ready with a link that carries nothing. Links whose peers are on this
// node, or not registered yet, need no tunnel now and go ahead.
func (a *Agent) refuseCrossNode(ctx context.Context, ends []*store.EndRecord) *agentapi.Response {
	h := a.Health()
	if h.Ready {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.CallTimeout)
	defer cancel()
	var remote []string
	for _, e := range ends {
		peer, err := a.reg.End(ctx, e.PeerPod, e.PeerIfName)
		if err != nil {
			return failed(types.ErrTryAgainLater, fmt.Sprintf("ratchetd is not ready (%s) and cannot tell whether the peer %s|%s of %s|%s is on another node: %v",
				h.Reason(), e.PeerPod, e.PeerIfName, e.Pod, e.IfName, err))
		}
		if peer != nil && peer.Node != a.cfg.Node {
			remote = append(remote, fmt.Sprintf("the peer %s|%s of %s|%s is on node %s", e.PeerPod, e.PeerIfName, e.Pod, e.IfName, peer.Node))
		}
	}
	if len(remote) == 0 {
		return nil
	}
	// The lookups above were answered: the cluster store is reachable,
	// whatever the last probe said (one that a loaded machine delayed past
	// its timeout). Refusing the ADD on that probe would refuse one that
	// works.
	if !a.health.ok(checkEtcd) {
		a.noteEtcd("")
		if h = a.Health(); h.Ready {
			return nil
		}
	}
	return failed(types.ErrTryAgainLater, fmt.Sprintf("%s, and ratchetd cannot make the tunnel to it: %s", remote[0], h.Reason()))
}

// mountPropagation finds the mount that holds dir in mountinfo (the
// longest mount point that is dir or one of its parents) and reports
// whether it receives mounts made elsewhere: it is shared or a slave
// ("shared:N" or "master:N" among its optional fields).
func mountPropagation(mountinfo []byte, dir string) (mountPoint string, receives bool) {
	for _, line := range bytes.Split(mountinfo, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 7 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp != dir && mp != "/" && !strings.HasPrefix(dir, mp+"/") {
			continue
		}
		if len(mp) < len(mountPoint) {
			continue
		}
		// Later lines mount over earlier ones at the same point.
		mountPoint, receives = mp, false
		for _, opt := range f[6:] {
			if opt == "-" {
				break
			}
			if strings.HasPrefix(opt, "shared:") || strings.HasPrefix(opt, "master:") {
				receives = true
			}
		}
	}
	return mountPoint, receives
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

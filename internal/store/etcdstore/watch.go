package etcdstore

import (
	"context"
	"net/url"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/connectivity"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Watch reports the changes under the prefix until ctx ends, then closes
// the channel. The first value is always a Resync (sent once the cluster is
// reachable), so an agent's loop is just:
//
//	for c := range e.Watch(ctx) {
//		if c.Resync { reread everything; continue }
//		reread the record c names
//	}
//
// It survives outages and etcd restarts: when the connection to the
// cluster is lost, the watch is cancelled by the server (compaction, no
// leader) or its stream ends, it waits for the cluster (backing off up to
// 2s), reads the revision again, sends another Resync and watches on from
// there. A consumer that lags only delays the watch: values are never
// dropped.
func (e *Etcd) Watch(ctx context.Context) <-chan store.Change {
	out := make(chan store.Change, 64)
	go func() {
		defer close(out)
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			if e.watchSession(ctx, out) {
				backoff = 50 * time.Millisecond // it worked for a while: retry soon
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}()
	return out
}

// watchSession reads the revision, sends a Resync and relays the watch
// from there until it is lost. It reports whether it got as far as the
// Resync.
func (e *Etcd) watchSession(ctx context.Context, out chan<- store.Change) bool {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gctx, gcancel := e.call(sctx)
	resp, err := e.cli.Get(gctx, e.prefix+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	gcancel()
	if err != nil {
		return false
	}
	// A watch on a cluster that is gone neither fails nor ends: the client
	// waits for it to come back and resumes, silently. Leaving the READY
	// state is how a lost connection shows; then this session ends and the
	// next one resyncs.
	lost := make(chan struct{})
	go func() {
		defer close(lost)
		conn := e.cli.ActiveConnection()
		for s := conn.GetState(); s == connectivity.Ready; s = conn.GetState() {
			if !conn.WaitForStateChange(sctx, s) {
				return // the session ended
			}
		}
	}()
	wch := e.cli.Watch(clientv3.WithRequireLeader(sctx), e.prefix+"/",
		clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	if !send(ctx, out, store.Change{Resync: true}) {
		return true
	}
	for {
		select {
		case <-lost:
			return true
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil || wr.Canceled {
				return true
			}
			for _, ev := range wr.Events {
				c, ok := e.change(string(ev.Kv.Key))
				if !ok {
					continue
				}
				c.Deleted = ev.Type == mvccpb.DELETE
				if !send(ctx, out, c) {
					return true
				}
			}
		}
	}
}

func send(ctx context.Context, out chan<- store.Change, c store.Change) bool {
	select {
	case out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// change decodes a key under the prefix; the VNI's own key (vni/<n>) is
// not reported: its link's key changes in the same transaction.
func (e *Etcd) change(key string) (store.Change, bool) {
	rest, ok := strings.CutPrefix(key, e.prefix+"/")
	if !ok {
		return store.Change{}, false
	}
	parts := strings.Split(rest, "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return store.Change{}, false
		}
		parts[i] = u
	}
	switch {
	case len(parts) == 4 && parts[0] == "ends":
		return store.Change{Kind: "end", Node: parts[1], Pod: parts[2], IfName: parts[3]}, true
	case len(parts) == 2 && parts[0] == "nodes":
		return store.Change{Kind: "node", Node: parts[1]}, true
	case len(parts) == 3 && parts[0] == "links" && parts[2] == "vni":
		return store.Change{Kind: "vni", LinkID: parts[1]}, true
	case len(parts) == 3 && parts[0] == "links" && parts[2] == "settings":
		return store.Change{Kind: "settings", LinkID: parts[1]}, true
	case len(parts) == 3 && parts[0] == "links" && parts[2] == "added":
		return store.Change{Kind: "added", LinkID: parts[1]}, true
	}
	return store.Change{}, false
}

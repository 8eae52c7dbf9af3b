// Package etcdstore is the cluster-wide store.Registry on an etcd v3
// cluster. It is a package of its own so that the plugin binary, which
// imports internal/store, never links the etcd client: the node agent holds the
// etcd connection.
//
// Keys under the prefix (each segment escaped with url.PathEscape), values
// JSON:
//
//	<p>/nodes/<node>                 store.NodeRecord
//	<p>/ends/<node>/<pod>/<ifname>   store.EndRecord of an end on node
//	<p>/vni/<n>                      the link id that holds VNI n
//	<p>/links/<linkID>/vni           the link's VNI
//	<p>/links/<linkID>/settings      store.Settings: a cross-node link's run-time settings
//
// What a node writes about itself is under keys of its own (nodes/<node>
// and the prefix ends/<node>/), so that etcd's auth can confine each node's
// credentials to its own state (docs/multinode.md, "etcd users"): a node
// cannot move another node's VTEP or take over another node's pod ends.
// The VNI keys are shared: allocation is a create-if-absent that any node
// may race for. A pod that moved leaves its old node's record until that
// node withdraws it; the newest registration of a pod interface (highest
// mod revision) is the one End and Ends return.
//
// Every call runs under its own timeout, and every read-modify-write is one
// transaction guarded by compares, so that any call is safe to repeat and
// concurrent agents never corrupt each other's records. Failures to reach
// the cluster wrap store.ErrUnavailable (CNI code 11: try again later).
package etcdstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store"
)

// Config says how to reach the cluster.
type Config struct {
	// Endpoints are the members' client URLs ("https://10.0.0.1:2379", or
	// "host:port", which uses TLS when it is configured).
	Endpoints []string
	// Prefix is the root of ratchet's keys; default "/ratchet".
	Prefix string
	// CA, Cert and Key are PEM files. When CA or Cert is set the client
	// uses TLS: it trusts CA (else the system's roots) and presents Cert
	// and Key as its client certificate.
	CA, Cert, Key string
	// Timeout bounds every call; default 5s.
	Timeout time.Duration
	// DialTimeout bounds the connection's setup; default Timeout.
	DialTimeout time.Duration
	// Insecure allows plaintext endpoints (http://, or host:port without
	// TLS): without it Open refuses them, as anyone on the path could read
	// and rewrite the cluster's state.
	Insecure bool
	// Underlay, when not empty, holds the prefixes every node's VTEP must
	// be in: a node record whose VTEP is elsewhere is skipped as if absent.
	Underlay []netip.Prefix
	// Log receives the records skipped as malformed; nil discards them.
	Log *slog.Logger
}

// DefaultPrefix is the prefix of ratchet's keys when Config.Prefix is "".
const DefaultPrefix = "/ratchet"

// DefaultTimeout bounds each call when Config.Timeout is 0.
const DefaultTimeout = 5 * time.Second

// Etcd is the Registry on etcd. Its methods are safe for concurrent use.
type Etcd struct {
	cli      *clientv3.Client
	prefix   string
	timeout  time.Duration
	underlay []netip.Prefix
	log      *slog.Logger
}

var _ store.Registry = (*Etcd)(nil)

// Open makes a client for the cluster. It does not wait for the cluster:
// an agent starts while etcd is down, and its calls fail with
// store.ErrUnavailable until etcd is back.
func Open(cfg Config) (*Etcd, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	prefix := trimPrefix(cfg.Prefix)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	dialTimeout := cfg.DialTimeout
	if dialTimeout <= 0 {
		dialTimeout = timeout
	}
	ccfg := clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: dialTimeout,
		// The agent logs to stderr itself.
		Logger: zap.NewNop(),
		// RejectOldCluster stays false: it would refuse etcd 3.4 servers.
	}
	if err := CheckEndpoints(cfg.Endpoints, cfg.CA != "" || cfg.Cert != "", cfg.Insecure); err != nil {
		return nil, err
	}
	if cfg.CA != "" || cfg.Cert != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		for _, ep := range cfg.Endpoints {
			if strings.HasPrefix(ep, "http://") || strings.HasPrefix(ep, "unix://") {
				return nil, fmt.Errorf("etcd: endpoint %s is not TLS, but TLS is configured: use https://", ep)
			}
		}
		ccfg.TLS = tc
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Etcd{cli: cli, prefix: prefix, timeout: timeout, underlay: cfg.Underlay, log: log}, nil
}

// ErrPlaintext says that an endpoint is not encrypted and the
// configuration did not opt in to that.
var ErrPlaintext = errors.New("plaintext etcd endpoint: use https:// with store.tls, or set store.insecure")

// CheckEndpoints refuses a plaintext endpoint (http://, unix://, or
// host:port when TLS is not configured) unless insecure allows it.
func CheckEndpoints(endpoints []string, tls, insecure bool) error {
	if insecure {
		return nil
	}
	for _, ep := range endpoints {
		if netconf.PlaintextEndpoint(ep, tls) {
			return fmt.Errorf("%w: %s", ErrPlaintext, ep)
		}
	}
	return nil
}

// skip logs a record that is skipped as malformed.
func (e *Etcd) skip(key []byte, err error) {
	e.log.Warn("skipping a bad registry record", "key", string(key), "error", err)
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CA != "" {
		pem, err := os.ReadFile(cfg.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate", cfg.CA)
		}
		tc.RootCAs = pool
	}
	if cfg.Cert != "" || cfg.Key != "" {
		if cfg.Cert == "" || cfg.Key == "" {
			return nil, errors.New("etcd TLS: a client certificate needs both cert and key")
		}
		cert, err := tls.LoadX509KeyPair(cfg.Cert, cfg.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Close implements store.Registry.
func (e *Etcd) Close() error { return e.cli.Close() }

// Client is the underlying client, for what the Registry does not cover.
func (e *Etcd) Client() *clientv3.Client { return e.cli }

// Connected reports whether the client holds a ready connection to a
// member now: no round trip, so a cheap guess at whether a write would go
// through.
func (e *Etcd) Connected() bool {
	return e.cli.ActiveConnection().GetState() == connectivity.Ready
}

// Prefix is the root of the store's keys.
func (e *Etcd) Prefix() string { return e.prefix }

func (e *Etcd) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.timeout)
}

// do runs fn under the call's timeout, again while it fails to reach the
// cluster and time is left: a leader election, a member that just died
// under the client's connection. Each attempt has a third of the timeout:
// a request in flight when the leader died is lost, and would otherwise
// wait out the whole timeout. Every operation is safe to repeat, even one
// that timed out after the cluster committed it.
func (e *Etcd) do(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, cancel := e.call(ctx)
	defer cancel()
	attempt := max(e.timeout/3, 200*time.Millisecond)
	backoff := 20 * time.Millisecond
	for {
		actx, acancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		if err != nil && !errors.Is(err, store.ErrUnavailable) && actx.Err() != nil {
			// Out of time, whatever the error says (the server may
			// report the deadline as code Unknown).
			err = fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
		acancel()
		if err == nil || !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// wrap gives failures to reach the cluster store.ErrUnavailable.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%w: etcd %s: %v", store.ErrUnavailable, op, err)
	}
	return fmt.Errorf("etcd %s: %w", op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	if ev, ok := err.(rpctypes.EtcdError); ok {
		switch ev.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled:
			return true
		}
		return false
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted, codes.Canceled:
			return true
		case codes.Unknown:
			// A server passes its own context's end on as Unknown, with
			// the context error's text as the only trace of it: gRPC
			// carries no typed cause (etcd's own client maps its errors
			// by their text too). Seen without quorum, just before our
			// own deadline fires.
			return strings.Contains(s.Message(), context.DeadlineExceeded.Error()) ||
				strings.Contains(s.Message(), context.Canceled.Error())
		}
	}
	return false
}

// Keys.

func seg(s string) string { return url.PathEscape(s) }

func (e *Etcd) endsDir() string  { return e.prefix + "/ends/" }
func (e *Etcd) nodesDir() string { return e.prefix + "/nodes/" }
func (e *Etcd) vniDir() string   { return e.prefix + "/vni/" }
func (e *Etcd) linksDir() string { return e.prefix + "/links/" }

func (e *Etcd) endKey(node, pod, ifName string) string {
	return e.nodeEndsDir(node) + seg(pod) + "/" + seg(ifName)
}
func (e *Etcd) nodeEndsDir(node string) string { return e.endsDir() + seg(node) + "/" }
func (e *Etcd) nodeKey(name string) string     { return e.nodesDir() + seg(name) }
func (e *Etcd) vniKey(n uint32) string         { return e.vniDir() + strconv.FormatUint(uint64(n), 10) }
func (e *Etcd) linkVNIKey(id string) string    { return e.linksDir() + seg(id) + "/vni" }

func jsonString(v any) (string, error) {
	raw, err := json.Marshal(v)
	return string(raw), err
}

// maxTxnEnds bounds the ends one transaction touches: etcd refuses a
// transaction of more than --max-txn-ops operations (128 by default), and
// a pod may have up to maxLinksPerPod ends (128 by default, more if set). Each end's record stands
// on its own, so a pod's ends may go in several transactions.
const maxTxnEnds = 64

// chunks calls f on consecutive slices of at most maxTxnEnds elements.
func chunks[T any](all []T, f func([]T) error) error {
	for len(all) > 0 {
		n := min(len(all), maxTxnEnds)
		if err := f(all[:n]); err != nil {
			return err
		}
		all = all[n:]
	}
	return nil
}

func decode(kv []byte, key []byte, v any) error {
	if err := json.Unmarshal(kv, v); err != nil {
		return fmt.Errorf("etcd record %q: %w", key, err)
	}
	return nil
}

// maxCandidates is how many free VNIs one read of the taken ones offers
// to try.
const maxCandidates = 64

// maxRetries bounds the retries of a transaction whose compares failed
// because another agent changed the keys in between.
const maxRetries = 10

// errContended is transient: the caller may try again later.
var errContended = fmt.Errorf("%w: etcd transaction kept conflicting with concurrent writers", store.ErrUnavailable)

// registerEnds is RegisterEnds without retries.
func (e *Etcd) registerEnds(ctx context.Context, ends []*store.EndRecord) error {
	return chunks(ends, func(ends []*store.EndRecord) error {
		ops := make([]clientv3.Op, 0, len(ends))
		for _, end := range ends {
			if err := end.Check(); err != nil {
				// What every reader would skip is not written.
				return fmt.Errorf("register ends: %w", err)
			}
			val, err := jsonString(end)
			if err != nil {
				return err
			}
			ops = append(ops, clientv3.OpPut(e.endKey(end.Node, end.Pod, end.IfName), val))
		}
		_, err := e.cli.Txn(ctx).Then(ops...).Commit()
		return wrap("register ends", err)
	})
}

// unregisterEnds is UnregisterEnds without retries.
func (e *Etcd) unregisterEnds(ctx context.Context, node string, key store.AttachmentKey, pod string, ifNames []string) error {
	return chunks(ifNames, func(ifNames []string) error { return e.unregisterSome(ctx, node, key, pod, ifNames) })
}

func (e *Etcd) unregisterSome(ctx context.Context, node string, key store.AttachmentKey, pod string, ifNames []string) error {
	keys := make([]string, len(ifNames))
	gets := make([]clientv3.Op, len(ifNames))
	for i, ifName := range ifNames {
		keys[i] = e.endKey(node, pod, ifName)
		gets[i] = clientv3.OpGet(keys[i])
	}
	for range maxRetries {
		// One snapshot of all the ends.
		resp, err := e.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return wrap("unregister ends", err)
		}
		var cmps []clientv3.Cmp
		var dels []clientv3.Op
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			end := &store.EndRecord{}
			if err := decode(kvs[0].Value, kvs[0].Key, end); err != nil {
				return err
			}
			if end.Node != node || end.Attachment != key {
				continue // replaced by a later registration: it stays
			}
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(keys[i]), "=", kvs[0].ModRevision))
			dels = append(dels, clientv3.OpDelete(keys[i]))
		}
		if len(dels) == 0 {
			return nil
		}
		tr, err := e.cli.Txn(ctx).If(cmps...).Then(dels...).Commit()
		if err != nil {
			return wrap("unregister ends", err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return errContended
}

// end is End without retries: it looks the end up under every announced
// node (one read of the node names, then one transaction of gets) and
// returns the newest registration. An end on a node that has not announced
// itself yet is not found: no tunnel can go there anyway, and its
// announcement makes every agent re-read everything (Ends). A malformed
// record is logged and reads as absent.
func (e *Etcd) end(ctx context.Context, pod, ifName string) (*store.EndRecord, error) {
	nodes, err := e.cli.Get(ctx, e.nodesDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, wrap("get end", err)
	}
	var newest *store.EndRecord
	var newestRev int64
	err = chunks(nodes.Kvs, func(kvs []*mvccpb.KeyValue) error {
		gets := make([]clientv3.Op, 0, len(kvs))
		for _, kv := range kvs {
			node, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), e.nodesDir()))
			if err != nil {
				continue
			}
			gets = append(gets, clientv3.OpGet(e.endKey(node, pod, ifName)))
		}
		resp, err := e.cli.Txn(ctx).Then(gets...).Commit()
		if err != nil {
			return wrap("get end", err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				if end := e.checkEnd(kv.Key, kv.Value); end != nil && kv.ModRevision > newestRev {
					newest, newestRev = end, kv.ModRevision
				}
			}
		}
		return nil
	})
	return newest, err
}

// checkEnd decodes and checks the end record at key; nil, logged, when it
// is malformed or its key is not that of the end on the node it names
// (etcd's auth confines a node's writes to its own keys: the key, not the
// record's content, says who wrote it).
func (e *Etcd) checkEnd(key, val []byte) *store.EndRecord {
	end := &store.EndRecord{}
	err := decode(val, key, end)
	if err == nil {
		err = end.Check()
	}
	if err == nil && string(key) != e.endKey(end.Node, end.Pod, end.IfName) {
		err = fmt.Errorf("%w: the record is of end %s %s on node %s", store.ErrBadRecord, end.Pod, end.IfName, end.Node)
	}
	if err != nil {
		e.skip(key, err)
		return nil
	}
	return end
}

// ends is Ends without retries.
func (e *Etcd) ends(ctx context.Context) ([]*store.EndRecord, error) {
	resp, err := e.cli.Get(ctx, e.endsDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, wrap("list ends", err)
	}
	// A pod interface registered on several nodes (it moved, and its old
	// node has not withdrawn it yet): the newest registration counts.
	type newest struct {
		end *store.EndRecord
		rev int64
	}
	byEnd := make(map[[2]string]newest, len(resp.Kvs))
	var order [][2]string
	for _, kv := range resp.Kvs {
		end := e.checkEnd(kv.Key, kv.Value)
		if end == nil {
			continue
		}
		id := [2]string{end.Pod, end.IfName}
		cur, seen := byEnd[id]
		if !seen {
			order = append(order, id)
		}
		if seen && cur.end.Node != end.Node {
			// A pod that moved, or a node that claims another's pod:
			// either way an operator should know.
			e.log.Warn("pod interface claimed by several nodes; the newest registration counts",
				"pod", end.Pod, "interface", end.IfName, "nodes", []string{cur.end.Node, end.Node})
		}
		if !seen || kv.ModRevision > cur.rev {
			byEnd[id] = newest{end, kv.ModRevision}
		}
	}
	all := make([]*store.EndRecord, 0, len(order))
	for _, id := range order {
		all = append(all, byEnd[id].end)
	}
	return all, nil
}

// putNode is PutNode without retries.
func (e *Etcd) putNode(ctx context.Context, n *store.NodeRecord) error {
	val, err := jsonString(n)
	if err != nil {
		return err
	}
	_, err = e.cli.Put(ctx, e.nodeKey(n.Name), val)
	return wrap("put node", err)
}

// node is Node without retries. A malformed record, one under another
// node's name or with a VTEP outside the underlay is logged and reads as
// absent: no tunnel goes to that node until it announces itself properly.
func (e *Etcd) node(ctx context.Context, name string) (*store.NodeRecord, error) {
	resp, err := e.cli.Get(ctx, e.nodeKey(name))
	if err != nil || len(resp.Kvs) == 0 {
		return nil, wrap("get node", err)
	}
	kv := resp.Kvs[0]
	n := &store.NodeRecord{}
	err = decode(kv.Value, kv.Key, n)
	if err == nil && n.Name != name {
		err = fmt.Errorf("%w: the record names node %q", store.ErrBadRecord, n.Name)
	}
	if err == nil {
		err = n.Check(e.underlay)
	}
	if err != nil {
		e.skip(kv.Key, err)
		return nil, nil
	}
	return n, nil
}

// get decodes the value at key into v; it reports whether it exists.
func (e *Etcd) get(ctx context.Context, key string, v any) (bool, error) {
	resp, err := e.cli.Get(ctx, key)
	if err != nil {
		return false, wrap("get", err)
	}
	if len(resp.Kvs) == 0 {
		return false, nil
	}
	return true, decode(resp.Kvs[0].Value, resp.Kvs[0].Key, v)
}

// allocateVNI is AllocateVNI without retries.
func (e *Etcd) allocateVNI(ctx context.Context, id string, first, last uint32) (uint32, error) {
	if err := store.CheckVNIRange(first, last); err != nil {
		return 0, err
	}
	linkKey := e.linkVNIKey(id)
	idJSON, err := jsonString(id)
	if err != nil {
		return 0, err
	}
	start := store.FirstCandidateVNI(id, first, last)
	candidates := []uint32{start}
	for reads := 0; ; {
		for _, n := range candidates {
			vk := e.vniKey(n)
			resp, err := e.cli.Txn(ctx).
				If(clientv3.Compare(clientv3.CreateRevision(linkKey), "=", 0),
					clientv3.Compare(clientv3.CreateRevision(vk), "=", 0)).
				Then(clientv3.OpPut(vk, idJSON), clientv3.OpPut(linkKey, strconv.FormatUint(uint64(n), 10))).
				Else(clientv3.OpGet(linkKey), clientv3.OpGet(vk)).
				Commit()
			if err != nil {
				return 0, wrap("allocate VNI", err)
			}
			if resp.Succeeded {
				return n, nil
			}
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				var have uint32
				if err := decode(kvs[0].Value, kvs[0].Key, &have); err != nil {
					return 0, err
				}
				return have, nil // the other end's agent was first
			}
			// n is taken (or was released since: the next read shows it).
		}
		// Read which VNIs are free, from start on, wrapping.
		if reads++; reads > maxRetries {
			return 0, errContended
		}
		taken, err := e.takenVNIs(ctx)
		if err != nil {
			return 0, err
		}
		// The next few free ones, from start on, wrapping: a default range
		// has 16.7 M VNIs, too many to list.
		candidates = candidates[:0]
		size := uint64(last-first) + 1
		for i := uint64(0); i < size && len(candidates) < maxCandidates; i++ {
			n := first + uint32((uint64(start-first)+i)%size)
			if !taken[n] {
				candidates = append(candidates, n)
			}
		}
		if len(candidates) == 0 {
			// The link may have got one meanwhile (its other end).
			if v, err := e.vni(ctx, id); err != nil || v != 0 {
				return v, err
			}
			return 0, store.ErrVNIExhausted
		}
	}
}

// takenVNIs reads the allocated VNIs (keys only).
func (e *Etcd) takenVNIs(ctx context.Context) (map[uint32]bool, error) {
	resp, err := e.cli.Get(ctx, e.vniDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, wrap("list VNIs", err)
	}
	taken := make(map[uint32]bool, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if n, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), e.vniDir()), 10, 32); err == nil {
			taken[uint32(n)] = true
		}
	}
	return taken, nil
}

// vni is VNI without retries.
func (e *Etcd) vni(ctx context.Context, id string) (uint32, error) {
	var n uint32
	_, err := e.get(ctx, e.linkVNIKey(id), &n)
	if err != nil && !errors.Is(err, store.ErrUnavailable) || n > store.MaxVNI {
		e.skip([]byte(e.linkVNIKey(id)), fmt.Errorf("%w: not a VNI: %v", store.ErrBadRecord, err))
		return 0, nil
	}
	return n, err
}

// vnis is VNIs without retries.
func (e *Etcd) vnis(ctx context.Context) (map[uint32]string, error) {
	resp, err := e.cli.Get(ctx, e.vniDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, wrap("list VNIs", err)
	}
	all := make(map[uint32]string, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), e.vniDir()), 10, 32)
		if err != nil || n == 0 || n > store.MaxVNI {
			e.skip(kv.Key, fmt.Errorf("%w: not a VNI", store.ErrBadRecord))
			continue
		}
		var id string
		if err := decode(kv.Value, kv.Key, &id); err != nil || id == "" {
			e.skip(kv.Key, fmt.Errorf("%w: not a link id: %v", store.ErrBadRecord, err))
			continue
		}
		all[uint32(n)] = id
	}
	return all, nil
}

// releaseVNI is ReleaseVNI without retries.
func (e *Etcd) releaseVNI(ctx context.Context, id string) error {
	podA, ifA, podB, ifB, ok := store.ParseLinkID(id)
	if !ok {
		return nil // which ends to check cannot be told: keep it
	}
	linkKey := e.linkVNIKey(id)
	idJSON, err := jsonString(id)
	if err != nil {
		return err
	}
	for range maxRetries {
		resp, err := e.cli.Get(ctx, linkKey)
		if err != nil {
			return wrap("release VNI", err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		rev := resp.Header.Revision
		// Only while neither end is registered, on any node: an agent
		// that read the ends before the pods came back must not free a
		// VNI their tunnels use. The ends are read at the revision of the
		// link's key, and the transaction holds only if no end key was
		// written since (the ends of a pod are under each node's own
		// prefix: no one key or range says "this pod's ends").
		if used, err := e.anyEnd(ctx, rev, podA, ifA, podB, ifB); err != nil || used {
			return err // an end is there: the link keeps its VNI
		}
		var n uint32
		if err := decode(resp.Kvs[0].Value, resp.Kvs[0].Key, &n); err != nil {
			return err
		}
		vk := e.vniKey(n)
		vresp, err := e.cli.Get(ctx, vk, clientv3.WithRev(rev))
		if err != nil {
			return wrap("release VNI", err)
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(linkKey), "=", resp.Kvs[0].ModRevision),
			clientv3.Compare(clientv3.ModRevision(e.endsDir()), "<", rev+1).WithPrefix(),
		}
		// The link's run-time settings go with it (settings.go), and so
		// does its added-link record (added.go): both its pods are gone.
		ops := []clientv3.Op{clientv3.OpDelete(linkKey), clientv3.OpDelete(e.linkSettingsKey(id)), clientv3.OpDelete(e.addedKey(id))}
		if len(vresp.Kvs) > 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(vk), "=", vresp.Kvs[0].ModRevision))
			if string(vresp.Kvs[0].Value) == idJSON {
				ops = append(ops, clientv3.OpDelete(vk))
			}
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(vk), "=", 0))
		}
		tr, err := e.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return wrap("release VNI", err)
		}
		if tr.Succeeded {
			return nil
		}
	}
	return errContended
}

// anyEnd reports whether either end is registered, on any node, at
// revision rev: one read of the ends' keys.
func (e *Etcd) anyEnd(ctx context.Context, rev int64, podA, ifA, podB, ifB string) (bool, error) {
	resp, err := e.cli.Get(ctx, e.endsDir(), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
	if err != nil {
		return false, wrap("release VNI", err)
	}
	a, b := "/"+seg(podA)+"/"+seg(ifA), "/"+seg(podB)+"/"+seg(ifB)
	for _, kv := range resp.Kvs {
		// ends/<node>/<pod>/<ifname>: escaped segments hold no "/".
		if k := string(kv.Key); strings.HasSuffix(k, a) || strings.HasSuffix(k, b) {
			return true, nil
		}
	}
	return false, nil
}

// Health reads from the cluster through its leader (a linearizable read),
// within the timeout: nil when the cluster serves requests.
func (e *Etcd) health(ctx context.Context) error {
	_, err := e.cli.Get(ctx, e.prefix+"/health", clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("%w: etcd health: %v", store.ErrUnavailable, err)
	}
	return nil
}

// RegisterEnds implements store.Registry: one transaction of puts.
func (e *Etcd) RegisterEnds(ctx context.Context, ends []*store.EndRecord) error {
	return e.do(ctx, func(ctx context.Context) error { return e.registerEnds(ctx, ends) })
}

// UnregisterEnds implements store.Registry: it reads the ends, then deletes
// those that node's attachment key made, in one transaction that holds
// only if none of them changed since the read.
func (e *Etcd) UnregisterEnds(ctx context.Context, node string, key store.AttachmentKey, pod string, ifNames []string) error {
	return e.do(ctx, func(ctx context.Context) error { return e.unregisterEnds(ctx, node, key, pod, ifNames) })
}

// End implements store.Registry.
func (e *Etcd) End(ctx context.Context, pod, ifName string) (end *store.EndRecord, err error) {
	err = e.do(ctx, func(ctx context.Context) error { end, err = e.end(ctx, pod, ifName); return err })
	return end, err
}

// Ends implements store.Registry.
func (e *Etcd) Ends(ctx context.Context) (all []*store.EndRecord, err error) {
	err = e.do(ctx, func(ctx context.Context) error { all, err = e.ends(ctx); return err })
	return all, err
}

// PutNode implements store.Registry.
func (e *Etcd) PutNode(ctx context.Context, n *store.NodeRecord) error {
	return e.do(ctx, func(ctx context.Context) error { return e.putNode(ctx, n) })
}

// Node implements store.Registry.
func (e *Etcd) Node(ctx context.Context, name string) (n *store.NodeRecord, err error) {
	err = e.do(ctx, func(ctx context.Context) error { n, err = e.node(ctx, name); return err })
	return n, err
}

// AllocateVNI implements store.Registry. From FirstCandidateVNI on, each
// probe of VNI n is one transaction: if neither the link nor n has a key,
// create both; else read them. A link that already has a VNI gets it back;
// a VNI that another link holds sends the probe on. After a first
// collision the probes skip the VNIs that one read of the range shows
// taken, so that a crowded range costs one read, not a transaction per
// taken VNI; ErrVNIExhausted when a read shows the whole range taken.
func (e *Etcd) AllocateVNI(ctx context.Context, id string, first, last uint32) (vni uint32, err error) {
	err = e.do(ctx, func(ctx context.Context) error { vni, err = e.allocateVNI(ctx, id, first, last); return err })
	return vni, err
}

// VNI implements store.Registry.
func (e *Etcd) VNI(ctx context.Context, id string) (vni uint32, err error) {
	err = e.do(ctx, func(ctx context.Context) error { vni, err = e.vni(ctx, id); return err })
	return vni, err
}

// VNIs implements store.Registry.
func (e *Etcd) VNIs(ctx context.Context) (all map[uint32]string, err error) {
	err = e.do(ctx, func(ctx context.Context) error { all, err = e.vnis(ctx); return err })
	return all, err
}

// ReleaseVNI implements store.Registry: it deletes the link's key, and the
// VNI's key if it still holds the link, in one transaction that holds only
// if neither changed since it read them.
func (e *Etcd) ReleaseVNI(ctx context.Context, id string) error {
	return e.do(ctx, func(ctx context.Context) error { return e.releaseVNI(ctx, id) })
}

// Health reads from the cluster through its leader (a linearizable read)
// within the timeout: nil when the cluster serves requests, else an error
// that wraps store.ErrUnavailable.
func (e *Etcd) Health(ctx context.Context) error {
	err := e.do(ctx, e.health)
	if err != nil && !errors.Is(err, store.ErrUnavailable) {
		err = fmt.Errorf("%w: %v", store.ErrUnavailable, err)
	}
	return err
}

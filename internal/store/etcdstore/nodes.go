package etcdstore

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Nodes returns every announced node: the agent lets the VTEPs of these,
// and no other address, reach its tunnel port.
func (e *Etcd) Nodes(ctx context.Context) (all []*store.NodeRecord, err error) {
	err = e.do(ctx, func(ctx context.Context) error { all, err = e.nodes(ctx); return err })
	return all, err
}

// nodes is Nodes without retries. A record that is not well formed, names
// another node than its key, or has a VTEP outside the underlay is skipped
// and logged, as every registry read does: one bad record must neither let
// its address through the tunnel filter nor keep the good ones out.
func (e *Etcd) nodes(ctx context.Context) ([]*store.NodeRecord, error) {
	resp, err := e.cli.Get(ctx, e.nodesDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	all := make([]*store.NodeRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n := &store.NodeRecord{}
		err := decode(kv.Value, kv.Key, n)
		if err == nil && e.nodeKey(n.Name) != string(kv.Key) {
			err = fmt.Errorf("%w: the record names node %q", store.ErrBadRecord, n.Name)
		}
		if err == nil {
			err = n.Check(e.underlay)
		}
		if err != nil {
			e.skip(kv.Key, err)
			continue
		}
		all = append(all, n)
	}
	return all, nil
}

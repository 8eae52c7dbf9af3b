package etcdstore

import (
	"context"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// Nodes returns every announced node: the agent lets the VTEPs of these,
// and no other address, reach its tunnel port.
func (e *Etcd) Nodes(ctx context.Context) (all []*store.NodeRecord, err error) {
	err = e.do(ctx, func(ctx context.Context) error { all, err = e.nodes(ctx); return err })
	return all, err
}

// nodes is Nodes without retries.
func (e *Etcd) nodes(ctx context.Context) ([]*store.NodeRecord, error) {
	resp, err := e.cli.Get(ctx, e.nodesDir(), clientv3.WithPrefix())
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	all := make([]*store.NodeRecord, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n := &store.NodeRecord{}
		if err := decode(kv.Value, kv.Key, n); err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	return all, nil
}

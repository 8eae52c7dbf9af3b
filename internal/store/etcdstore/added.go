package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// A cross-node link made by `ratchetctl link add` lives in the cluster at
// links/<linkID>/added (store.AddedLink) from the add until `link del`
// deletes it, or both its ends are gone (ReleaseVNI): the agent of each
// node makes the end of the pod it runs from it.

func (e *Etcd) addedKey(id string) string { return e.linksDir() + seg(id) + "/added" }

// checkAdded decodes an added link's record and checks its shape; a bad
// record is logged and skipped, never acted on.
func (e *Etcd) checkAdded(id string, key, val []byte) *store.AddedLink {
	a := &store.AddedLink{}
	if err := decode(val, key, a); err != nil {
		e.skip(key, fmt.Errorf("%w: %v", store.ErrBadRecord, err))
		return nil
	}
	if err := a.Check(id); err != nil {
		e.skip(key, fmt.Errorf("%w: %v", store.ErrBadRecord, err))
		return nil
	}
	return a
}

// AddedLink returns link id's added-link record with its mod revision, or
// (nil, 0, nil) when it has none (a bad one reads as none, with its
// revision).
func (e *Etcd) AddedLink(ctx context.Context, id string) (a *store.AddedLink, rev int64, err error) {
	err = e.do(ctx, func(ctx context.Context) error {
		resp, err := e.cli.Get(ctx, e.addedKey(id))
		if err != nil {
			return wrap("get added link", err)
		}
		a, rev = nil, 0
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			a, rev = e.checkAdded(id, kv.Key, kv.Value), kv.ModRevision
		}
		return nil
	})
	return a, rev, err
}

// AddedLinks returns every added link's record, by link id; bad records
// are logged and left out.
func (e *Etcd) AddedLinks(ctx context.Context) (all map[string]*store.AddedLink, err error) {
	err = e.do(ctx, func(ctx context.Context) error {
		resp, err := e.cli.Get(ctx, e.linksDir(), clientv3.WithPrefix())
		if err != nil {
			return wrap("list added links", err)
		}
		all = map[string]*store.AddedLink{}
		for _, kv := range resp.Kvs {
			c, ok := e.change(string(kv.Key))
			if !ok || c.Kind != "added" {
				continue
			}
			if a := e.checkAdded(c.LinkID, kv.Key, kv.Value); a != nil {
				all[c.LinkID] = a
			}
		}
		return nil
	})
	return all, err
}

// PutAddedLink writes link id's added-link record a if the record is
// still at revision rev (0: there is none), else fails with
// store.ErrAddedChanged; a nil a deletes it.
func (e *Etcd) PutAddedLink(ctx context.Context, id string, a *store.AddedLink, rev int64) error {
	key := e.addedKey(id)
	op := clientv3.OpDelete(key)
	if a != nil {
		if err := a.Check(id); err != nil {
			return fmt.Errorf("added link %s: %w", id, err)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		op = clientv3.OpPut(key, string(b))
	}
	return e.do(ctx, func(ctx context.Context) error {
		tr, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(op).Commit()
		if err != nil {
			return wrap("put added link", err)
		}
		if !tr.Succeeded {
			return store.ErrAddedChanged
		}
		return nil
	})
}

// DeleteAddedLink deletes link id's added-link record, whatever it holds;
// one already gone is no error.
func (e *Etcd) DeleteAddedLink(ctx context.Context, id string) error {
	return e.do(ctx, func(ctx context.Context) error {
		_, err := e.cli.Delete(ctx, e.addedKey(id))
		return wrap("delete added link", err)
	})
}

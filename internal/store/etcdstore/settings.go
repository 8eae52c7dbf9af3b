package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ratchet-cni/ratchet/internal/store"
)

// A cross-node link's run-time settings (`ratchetctl link down/up/set/
// reset`) live in the cluster with the link, at links/<linkID>/settings,
// with their impairments in the link id's end order (the first end of the
// id is Toward[0]), so that both nodes' agents, and a node a pod moves to,
// apply the same settings. The key goes with the link's VNI once neither
// end is registered (ReleaseVNI), as the local store forgets a link's
// record once neither pod holds it.

func (e *Etcd) linkSettingsKey(id string) string { return e.linksDir() + seg(id) + "/settings" }

// checkSettings decodes a settings record and checks it as ratchetctl
// checks what it records: an impairment the kernel's fields cannot hold
// is a bad record, skipped, never applied.
func (e *Etcd) checkSettings(key, val []byte) *store.Settings {
	s := &store.Settings{}
	if err := decode(val, key, s); err != nil {
		e.skip(key, fmt.Errorf("%w: %v", store.ErrBadRecord, err))
		return nil
	}
	for _, t := range s.Toward {
		if t == nil {
			continue
		}
		if err := t.Validate(); err != nil {
			e.skip(key, fmt.Errorf("%w: %v", store.ErrBadRecord, err))
			return nil
		}
	}
	if s.IsZero() {
		return nil
	}
	return s
}

// LinkSettings returns link id's run-time settings, with their mod
// revision (0 when it has none), or (nil, 0, nil). A malformed record is
// logged and reads as none, with its revision: a write over it still
// compares right.
func (e *Etcd) LinkSettings(ctx context.Context, id string) (*store.Settings, int64, error) {
	return getWithRevision(e, ctx, e.linkSettingsKey(id), "get link settings", e.checkSettings)
}

// AllLinkSettings returns the run-time settings of every link that has
// some, by link id; bad records are logged and left out.
func (e *Etcd) AllLinkSettings(ctx context.Context) (map[string]*store.Settings, error) {
	return listLinkRecords(e, ctx, "settings", "list link settings", func(_ string, key, val []byte) *store.Settings {
		return e.checkSettings(key, val)
	})
}

// PutLinkSettings replaces link id's run-time settings with s (none: the
// key is deleted) if they are still at revision rev, as LinkSettings
// returned it (0: there were none): a compare-and-swap, so that two
// nodes' changes to one link never silently undo each other.
func (e *Etcd) PutLinkSettings(ctx context.Context, id string, s *store.Settings, rev int64) error {
	if _, _, _, _, ok := store.ParseLinkID(id); !ok {
		return fmt.Errorf("link settings: %q is not a link id", id)
	}
	var v any
	if !s.IsZero() {
		v = s
	}
	return e.compareAndPut(ctx, e.linkSettingsKey(id), v, rev, "put link settings", store.ErrSettingsChanged)
}

// getWithRevision reads key and returns what check makes of its value
// (nil for a bad one, which check logs), with its mod revision; (nil, 0,
// nil) when there is no key.
func getWithRevision[T any](e *Etcd, ctx context.Context, key, what string, check func(key, val []byte) *T) (v *T, rev int64, err error) {
	err = e.do(ctx, func(ctx context.Context) error {
		resp, err := e.cli.Get(ctx, key)
		if err != nil {
			return wrap(what, err)
		}
		v, rev = nil, 0
		if len(resp.Kvs) > 0 {
			kv := resp.Kvs[0]
			v, rev = check(kv.Key, kv.Value), kv.ModRevision
		}
		return nil
	})
	return v, rev, err
}

// listLinkRecords returns, by link id, what check makes of each record of
// kind under links/ (as change names the keys: "settings", "added"); bad
// records (nil from check, which logs them) are left out.
func listLinkRecords[T any](e *Etcd, ctx context.Context, kind, what string, check func(id string, key, val []byte) *T) (all map[string]*T, err error) {
	err = e.do(ctx, func(ctx context.Context) error {
		resp, err := e.cli.Get(ctx, e.linksDir(), clientv3.WithPrefix())
		if err != nil {
			return wrap(what, err)
		}
		all = map[string]*T{}
		for _, kv := range resp.Kvs {
			c, ok := e.change(string(kv.Key))
			if !ok || c.Kind != kind {
				continue // another kind of record, or a key this version does not know
			}
			if v := check(c.LinkID, kv.Key, kv.Value); v != nil {
				all[c.LinkID] = v
			}
		}
		return nil
	})
	return all, err
}

// compareAndPut writes v as JSON at key (nil v: deletes it) if the key is
// still at revision rev (0: absent), else fails with changed.
func (e *Etcd) compareAndPut(ctx context.Context, key string, v any, rev int64, what string, changed error) error {
	op := clientv3.OpDelete(key)
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		op = clientv3.OpPut(key, string(b))
	}
	return e.do(ctx, func(ctx context.Context) error {
		tr, err := e.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(op).Commit()
		if err != nil {
			return wrap(what, err)
		}
		if !tr.Succeeded {
			return changed
		}
		return nil
	})
}

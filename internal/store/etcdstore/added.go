package etcdstore

import (
	"context"
	"fmt"

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
func (e *Etcd) AddedLink(ctx context.Context, id string) (*store.AddedLink, int64, error) {
	return getWithRevision(e, ctx, e.addedKey(id), "get added link", func(key, val []byte) *store.AddedLink {
		return e.checkAdded(id, key, val)
	})
}

// AddedLinks returns every added link's record, by link id; bad records
// are logged and left out.
func (e *Etcd) AddedLinks(ctx context.Context) (map[string]*store.AddedLink, error) {
	return listLinkRecords(e, ctx, "added", "list added links", e.checkAdded)
}

// PutAddedLink writes link id's added-link record a if the record is
// still at revision rev (0: there is none), else fails with
// store.ErrAddedChanged; a nil a deletes it.
func (e *Etcd) PutAddedLink(ctx context.Context, id string, a *store.AddedLink, rev int64) error {
	var v any
	if a != nil {
		if err := a.Check(id); err != nil {
			return fmt.Errorf("added link %s: %w", id, err)
		}
		v = a
	}
	return e.compareAndPut(ctx, e.addedKey(id), v, rev, "put added link", store.ErrAddedChanged)
}

// DeleteAddedLink deletes link id's added-link record, whatever it holds;
// one already gone is no error.
func (e *Etcd) DeleteAddedLink(ctx context.Context, id string) error {
	return e.do(ctx, func(ctx context.Context) error {
		_, err := e.cli.Delete(ctx, e.addedKey(id))
		return wrap("delete added link", err)
	})
}

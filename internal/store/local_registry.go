package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// The local store's Registry keeps the registry of a single-node
// installation, where "cluster-wide" is this node. Every method is one bbolt
// transaction, and the directory lock serializes processes.

var _ Registry = (*Local)(nil)

// endKey is "<pod>\x00<ifname>", like the link index.
func endKey(pod, ifName string) []byte { return indexKey(pod, ifName) }

func vniKey(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }

// view and update run fn in a transaction. An error that bbolt itself
// returns (the file could not be read or written, the store is closed)
// wraps ErrUnavailable; fn's own errors (a corrupt record) do not.
func (l *Local) view(fn func(tx *bolt.Tx) error) error {
	var inner error
	err := l.db.View(func(tx *bolt.Tx) error { inner = fn(tx); return inner })
	return wrapBolt(err, inner)
}

func (l *Local) update(fn func(tx *bolt.Tx) error) error {
	var inner error
	err := l.db.Update(func(tx *bolt.Tx) error { inner = fn(tx); return inner })
	return wrapBolt(err, inner)
}

func wrapBolt(err, inner error) error {
	if err == nil || err == inner {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

// getJSON decodes the value at key into v; it reports whether it exists.
func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("record %q: %w", key, err)
	}
	return true, nil
}

// RegisterEnds implements Registry.
func (l *Local) RegisterEnds(_ context.Context, ends []*EndRecord) error {
	return l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(endsBucket)
		for _, e := range ends {
			if err := putJSON(b, endKey(e.Pod, e.IfName), e); err != nil {
				return err
			}
		}
		return nil
	})
}

// UnregisterEnds implements Registry.
func (l *Local) UnregisterEnds(_ context.Context, node string, key AttachmentKey, pod string, ifNames []string) error {
	return l.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(endsBucket)
		for _, ifName := range ifNames {
			k := endKey(pod, ifName)
			e := &EndRecord{}
			found, err := getJSON(b, k, e)
			if err != nil {
				return err
			}
			if !found || e.Node != node || e.Attachment != key {
				continue // gone, or replaced by a later registration
			}
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// End implements Registry.
func (l *Local) End(_ context.Context, pod, ifName string) (*EndRecord, error) {
	var e *EndRecord
	err := l.view(func(tx *bolt.Tx) error {
		r := &EndRecord{}
		found, err := getJSON(tx.Bucket(endsBucket), endKey(pod, ifName), r)
		if found && err == nil {
			e = r
		}
		return err
	})
	return e, err
}

// Ends implements Registry.
func (l *Local) Ends(_ context.Context) ([]*EndRecord, error) {
	var all []*EndRecord
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(endsBucket).ForEach(func(k, v []byte) error {
			e := &EndRecord{}
			if err := json.Unmarshal(v, e); err != nil {
				return fmt.Errorf("end %q: %w", k, err)
			}
			all = append(all, e)
			return nil
		})
	})
	return all, err
}

// PutNode implements Registry.
func (l *Local) PutNode(_ context.Context, n *NodeRecord) error {
	return l.update(func(tx *bolt.Tx) error { return putJSON(tx.Bucket(nodesBucket), []byte(n.Name), n) })
}

// Node implements Registry.
func (l *Local) Node(_ context.Context, name string) (*NodeRecord, error) {
	var n *NodeRecord
	err := l.view(func(tx *bolt.Tx) error {
		r := &NodeRecord{}
		found, err := getJSON(tx.Bucket(nodesBucket), []byte(name), r)
		if found && err == nil {
			n = r
		}
		return err
	})
	return n, err
}

// AllocateVNI implements Registry: in one transaction, the link's VNI if
// it has one, else the first free VNI from FirstCandidateVNI on, wrapping
// around the range.
func (l *Local) AllocateVNI(_ context.Context, id string, first, last uint32) (uint32, error) {
	if err := CheckVNIRange(first, last); err != nil {
		return 0, err
	}
	var vni uint32
	err := l.update(func(tx *bolt.Tx) error {
		links, vnis := tx.Bucket(linkVNIsBucket), tx.Bucket(vniBucket)
		if found, err := getJSON(links, []byte(id), &vni); found || err != nil {
			return err
		}
		n := FirstCandidateVNI(id, first, last)
		for range uint64(last-first) + 1 {
			if vnis.Get(vniKey(n)) == nil {
				if err := putJSON(vnis, vniKey(n), id); err != nil {
					return err
				}
				vni = n
				return putJSON(links, []byte(id), n)
			}
			if n++; n > last {
				n = first
			}
		}
		return ErrVNIExhausted
	})
	if err != nil {
		return 0, err
	}
	return vni, nil
}

// VNI implements Registry.
func (l *Local) VNI(_ context.Context, id string) (uint32, error) {
	var vni uint32
	err := l.view(func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(linkVNIsBucket), []byte(id), &vni)
		return err
	})
	return vni, err
}

// VNIs implements Registry.
func (l *Local) VNIs(_ context.Context) (map[uint32]string, error) {
	all := map[uint32]string{}
	err := l.view(func(tx *bolt.Tx) error {
		return tx.Bucket(vniBucket).ForEach(func(k, v []byte) error {
			var id string
			if len(k) != 4 {
				return fmt.Errorf("VNI key %q: not 4 bytes", k)
			}
			if err := json.Unmarshal(v, &id); err != nil {
				return fmt.Errorf("VNI %d: %w", binary.BigEndian.Uint32(k), err)
			}
			all[binary.BigEndian.Uint32(k)] = id
			return nil
		})
	})
	return all, err
}

// ReleaseVNI implements Registry.
func (l *Local) ReleaseVNI(_ context.Context, id string) error {
	podA, ifA, podB, ifB, ok := ParseLinkID(id)
	if !ok {
		return nil // which ends to check cannot be told: keep it
	}
	return l.update(func(tx *bolt.Tx) error {
		ends := tx.Bucket(endsBucket)
		if ends.Get(endKey(podA, ifA)) != nil || ends.Get(endKey(podB, ifB)) != nil {
			return nil // an end is registered: the link keeps its VNI
		}
		links, vnis := tx.Bucket(linkVNIsBucket), tx.Bucket(vniBucket)
		var n uint32
		if found, err := getJSON(links, []byte(id), &n); !found || err != nil {
			return err
		}
		var holder string
		if found, _ := getJSON(vnis, vniKey(n), &holder); found && holder == id {
			if err := vnis.Delete(vniKey(n)); err != nil {
				return err
			}
		}
		return links.Delete([]byte(id))
	})
}

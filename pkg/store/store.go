// Package store keeps ratchet's state: which attachments (container,
// network, interface) exist, in which namespace, and what they own. The
// local store is embedded and on disk for one node.
package store

import (
	"context"
	"errors"
	"time"
)

// AttachmentKey identifies a CNI attachment, as the runtime does.
type AttachmentKey struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

func (k AttachmentKey) String() string {
	return k.Network + "/" + k.ContainerID + "/" + k.IfName
}

// Attachment records what an ADD made, written before it makes anything so
// that a DEL or GC after a crash still finds it.
type Attachment struct {
	AttachmentKey
	// Netns is the pod's namespace path at ADD.
	Netns string `json:"netns"`
	// Marker is the alias prefix on every netdev the attachment owns.
	Marker string `json:"marker"`
	// Group is the netdev group of those netdevs.
	Group uint32 `json:"group"`
	// Links are the interface names in the pod.
	Links   []string  `json:"links"`
	Created time.Time `json:"created"`
}

// Store is ratchet's state. Each call is atomic.
type Store interface {
	// Attachment returns the record for key, or (nil, nil).
	Attachment(ctx context.Context, key AttachmentKey) (*Attachment, error)
	// PutAttachment creates or replaces a record.
	PutAttachment(ctx context.Context, a *Attachment) error
	// DeleteAttachment removes a record; a missing one is not an error.
	DeleteAttachment(ctx context.Context, key AttachmentKey) error
	// Attachments lists the records of one network.
	Attachments(ctx context.Context, network string) ([]*Attachment, error)
	// Close releases the store.
	Close() error
}

// ErrUnavailable wraps failures to reach the store.
var ErrUnavailable = errors.New("store unavailable")

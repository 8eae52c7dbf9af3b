// Package plugin implements ratchet's CNI operations: ADD, DEL, CHECK,
// STATUS and GC. Each operation validates all its input before any side
// effect, and ADD either makes everything or undoes what it made.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	cnins "github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// Plugin runs CNI operations. The zero value acts on the calling process's
// own namespace as the node (host) namespace.
type Plugin struct {
	// HostNS is the node's namespace, where vxlan underlays and macvlan
	// masters live; nil means the namespace the plugin runs in.
	HostNS ns.NetNS
	// Fault, when set, is called with the name of each step ADD has
	// completed, its own and those of pkg/link; an error from it fails ADD
	// there. Tests (and the faultinject build of the binary) use it to
	// prove that every failure is undone.
	Fault func(step string) error
}

// Status implements CNI STATUS: 0 when the store is usable (and, with the
// etcd store, when the node agent reaches the cluster), else code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := netconf.Decode(args.StdinData)
	if err != nil {
		return err
	}
	st, err := openStore(conf)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	st.Close()
	if multiNode(conf) {
		if err := agentHealth(context.Background(), conf); err != nil {
			return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
		}
	}
	return nil
}

// decodeAndOpen is how DEL and GC start: they decode the config without
// validating its links (a config ADD would now refuse must still let its
// attachments go) and open the store.
func decodeAndOpen(args *skel.CmdArgs) (*netconf.NetConf, *slog.Logger, store.Store, error) {
	conf, err := netconf.Decode(args.StdinData)
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(conf, args)
	st, err := openStore(conf)
	if err != nil {
		log.Error("store", "error", err)
		return nil, nil, nil, err
	}
	return conf, log, st, nil
}

func (p *Plugin) hostNS() (ns.NetNS, error) {
	if p.HostNS != nil {
		// The caller keeps ownership; hand out our own descriptor to close.
		return ns.GetNS(p.HostNS.Path())
	}
	return ns.GetCurrentNS()
}

// openPodNS opens CNI_NETNS. It refuses the plugin's own namespace before
// anything is made there (skel checks that only after ADD has run).
func openPodNS(path string) (ns.NetNS, error) {
	podNS, err := ns.GetNS(path)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: %v", path, err), "")
	}
	if own, cniErr := cnins.CheckNetNS(path); cniErr == nil && own {
		podNS.Close()
		return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q is the plugin's own network namespace", path), "")
	}
	return podNS, nil
}

func attachmentKey(conf *netconf.NetConf, args *skel.CmdArgs) store.AttachmentKey {
	return store.AttachmentKey{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

// openStore opens the node's local store, which takes the node lock for
// the whole operation. An operation that cannot have the lock within
// store.lockTimeout fails with code 11 (try again later) having done
// nothing: ADD leaves nothing behind, and DEL, which must not report a
// success it has not had, is retried by the runtime.
func openStore(conf *netconf.NetConf) (store.Store, error) {
	switch conf.Store.Type {
	case "local", "etcd":
		// With etcd too: the node's own state is local (see cluster.go).
		st, err := store.OpenLocalWithin(context.Background(), conf.Store.Dir, conf.Store.LockWait())
		if errors.Is(err, store.ErrLockTimeout) {
			return nil, types.NewError(types.ErrTryAgainLater, err.Error(), "")
		}
		if err != nil {
			return nil, storeError(err)
		}
		return st, nil
	}
	return nil, netconf.Invalid("store.type", conf.Store.Type, "not available in this build")
}

func storeError(err error) error {
	return types.NewError(netconf.ErrStore, err.Error(), "")
}

func linkError(err error) error {
	var exists *link.ExistsError
	if errors.As(err, &exists) {
		return types.NewError(netconf.ErrLinkExists, err.Error(), "")
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr
	}
	return types.NewError(netconf.ErrLinkFailed, err.Error(), "")
}

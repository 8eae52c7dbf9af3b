// Package plugin implements ratchet's CNI operations: ADD, DEL, CHECK,
// STATUS and GC. Each operation validates all its input before any side
// effect, and ADD either makes everything or undoes what it made.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/fault"
	"github.com/ratchet-cni/ratchet/pkg/link"
	"github.com/ratchet-cni/ratchet/pkg/netconf"
	"github.com/ratchet-cni/ratchet/pkg/store"
)

// Plugin runs CNI operations. The zero value acts on the calling process's
// own namespace as the node (host) namespace.
type Plugin struct {
	// HostNS is the node's namespace, where vxlan underlays and macvlan
	// masters live; nil means the namespace the plugin runs in.
	HostNS ns.NetNS
}

// Add implements CNI ADD and prints the result.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	res, conf, err := p.AddResult(context.Background(), args)
	if err != nil {
		return err
	}
	return printResult(res, conf.CNIVersion)
}

// AddResult runs ADD and returns its result instead of printing it.
func (p *Plugin) AddResult(ctx context.Context, args *skel.CmdArgs) (*current.Result, *netconf.NetConf, error) {
	conf, err := netconf.Load(args.StdinData, args.IfName)
	if err != nil {
		return nil, nil, err
	}
	log := newLogger(conf, args)
	res, err := p.add(ctx, conf, args)
	if err != nil {
		log.Error("ADD failed", "error", err)
		return nil, nil, err
	}
	log.Info("ADD done", "interfaces", len(res.Interfaces), "links", len(conf.Links))
	return res, conf, nil
}

func (p *Plugin) add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (res *current.Result, err error) {
	podNS, err := openPodNS(args.Netns)
	if err != nil {
		return nil, err
	}
	defer podNS.Close()
	host, err := p.hostNS()
	if err != nil {
		return nil, err
	}
	defer host.Close()

	key := attachmentKey(conf, args)
	owner := ownerOf(key)
	links, err := buildStatic(conf, podNS, host, owner)
	if err != nil {
		return nil, err
	}
	defer links.close()

	st, err := openStore(conf)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rec := &store.Attachment{AttachmentKey: key, Netns: args.Netns, Marker: owner.prefix, Group: owner.group, Links: links.names(), Created: now()}
	if err := st.PutAttachment(ctx, rec); err != nil {
		return nil, storeError(err)
	}
	done := false
	made := 0
	defer func() {
		if done {
			return
		}
		undo := context.WithoutCancel(ctx)
		for i := made - 1; i >= 0; i-- {
			_ = links[i].Remove(undo)
		}
		_ = st.DeleteAttachment(undo, key)
	}()
	if err := fault.Step(ctx, "record"); err != nil {
		return nil, err
	}
	for _, l := range links {
		if err := l.Create(ctx); err != nil {
			return nil, linkError(err)
		}
		made++
	}
	res, err = buildResult(conf, args, links)
	if err != nil {
		return nil, err
	}
	done = true
	return res, nil
}

// Del implements CNI DEL: idempotent and best-effort. It succeeds when the
// namespace is gone, CNI_NETNS is empty, or nothing was ever added.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	return p.DelContext(context.Background(), args)
}

// DelContext runs DEL.
func (p *Plugin) DelContext(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := netconf.Decode(args.StdinData)
	if err != nil {
		return err
	}
	log := newLogger(conf, args)
	st, err := openStore(conf)
	if err != nil {
		log.Error("DEL: store", "error", err)
		return err
	}
	defer st.Close()
	key := attachmentKey(conf, args)
	rec, err := st.Attachment(ctx, key)
	if err != nil {
		return storeError(err)
	}
	nsPath := args.Netns
	if nsPath == "" && rec != nil {
		nsPath = rec.Netns
	}
	removed, err := removeAttachment(nsPath, ownerOf(key))
	if err != nil {
		log.Error("DEL failed", "error", err)
		return types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	if err := st.DeleteAttachment(ctx, key); err != nil {
		return storeError(err)
	}
	log.Info("DEL done", "removed", removed, "recorded", rec != nil)
	return nil
}

// removeAttachment deletes every netdev an attachment owns in the
// namespace at nsPath; a namespace that is gone owns nothing.
func removeAttachment(nsPath string, owner owner) (int, error) {
	if nsPath == "" {
		return 0, nil
	}
	podNS, err := ns.GetNS(nsPath)
	if err != nil {
		return 0, nil
	}
	defer podNS.Close()
	return link.RemoveOwned(podNS, owner.group, owner.prefix)
}

// Check implements CNI CHECK: every link end this attachment should have
// exists and matches its spec.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	return p.CheckContext(context.Background(), args)
}

// CheckContext runs CHECK.
func (p *Plugin) CheckContext(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := netconf.Load(args.StdinData, args.IfName)
	if err != nil {
		return err
	}
	podNS, err := openPodNS(args.Netns)
	if err != nil {
		return err
	}
	defer podNS.Close()
	host, err := p.hostNS()
	if err != nil {
		return err
	}
	defer host.Close()
	links, err := buildStatic(conf, podNS, host, ownerOf(attachmentKey(conf, args)))
	if err != nil {
		return err
	}
	defer links.close()
	for _, l := range links {
		if err := l.Verify(ctx); err != nil {
			return types.NewError(netconf.ErrCheckFailed, err.Error(), "")
		}
	}
	return nil
}

// Status implements CNI STATUS: 0 when the store is usable, else code 50.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := netconf.Decode(args.StdinData)
	if err != nil {
		return err
	}
	st, err := openStore(conf)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, err.Error(), "")
	}
	return st.Close()
}

// GC implements CNI GC: it removes what belongs to attachments of this
// network that the runtime no longer lists as valid.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	return p.GCContext(context.Background(), args)
}

// GCContext runs GC.
func (p *Plugin) GCContext(ctx context.Context, args *skel.CmdArgs) error {
	conf, err := netconf.Decode(args.StdinData)
	if err != nil {
		return err
	}
	log := newLogger(conf, args)
	st, err := openStore(conf)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := st.Attachments(ctx, conf.Name)
	if err != nil {
		return storeError(err)
	}
	valid := conf.ValidAttachmentsFor()
	var errs []error
	for _, rec := range recs {
		if slices.ContainsFunc(valid, func(v types.GCAttachment) bool {
			return v.ContainerID == rec.ContainerID && v.IfName == rec.IfName
		}) {
			continue
		}
		if _, err := removeAttachment(rec.Netns, ownerOf(rec.AttachmentKey)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.AttachmentKey, err))
			continue
		}
		if err := st.DeleteAttachment(ctx, rec.AttachmentKey); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("GC removed attachment", "attachment", rec.AttachmentKey.String())
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	return nil
}

func (p *Plugin) hostNS() (ns.NetNS, error) {
	if p.HostNS != nil {
		// The caller keeps ownership; hand out our own descriptor to close.
		return ns.GetNS(p.HostNS.Path())
	}
	return ns.GetCurrentNS()
}

func openPodNS(path string) (ns.NetNS, error) {
	podNS, err := ns.GetNS(path)
	if err != nil {
		return nil, types.NewError(types.ErrInvalidNetNS, fmt.Sprintf("CNI_NETNS %q: %v", path, err), "")
	}
	return podNS, nil
}

func attachmentKey(conf *netconf.NetConf, args *skel.CmdArgs) store.AttachmentKey {
	return store.AttachmentKey{Network: conf.Name, ContainerID: args.ContainerID, IfName: args.IfName}
}

func openStore(conf *netconf.NetConf) (store.Store, error) {
	switch conf.Store.Type {
	case "local":
		st, err := store.OpenLocal(conf.Store.Dir)
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

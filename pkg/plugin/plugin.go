// Package plugin implements ratchet's CNI operations: ADD, DEL, CHECK,
// STATUS and GC. Each operation validates all its input before any side
// effect, and ADD either makes everything or undoes what it made.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/fault"
	"github.com/ratchet-cni/ratchet/pkg/link"
	"github.com/ratchet-cni/ratchet/pkg/netconf"
	"github.com/ratchet-cni/ratchet/pkg/store"
	"github.com/ratchet-cni/ratchet/pkg/topology"
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
	log.Info("ADD done", "interfaces", len(res.Interfaces))
	return res, conf, nil
}

func (p *Plugin) add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs) (res *current.Result, err error) {
	ctx, closeHandles := link.WithHandleCache(ctx)
	defer closeHandles()
	pod, err := topology.PodFromArgs(args.Args, args.ContainerID)
	if err != nil {
		return nil, err
	}
	decl, err := declaredPodLinks(conf, pod, args.IfName)
	if err != nil {
		return nil, err
	}
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

	var undo undoStack
	done := false
	defer func() {
		if !done {
			undo.run()
		}
	}()
	names := links.names()
	for _, l := range decl.Links {
		names = append(names, l.Spec.Name)
	}
	hasLinks := len(names) > 0 || decl.LegacyConsent
	delegated := ""
	switch {
	case !hasLinks && conf.HasDelegate():
		delegated = usedDelegate
	case hasLinks && conf.HasBootNetwork():
		delegated = usedBootNetwork
	}
	rec := &store.Attachment{AttachmentKey: key, Netns: args.Netns, Pod: pod.String(), Marker: owner.prefix, Group: owner.group, Links: names, PeerNetns: links.peerNetns(), Delegated: delegated, Created: now()}
	if err := st.PutAttachment(ctx, rec); err != nil {
		return nil, storeError(err)
	}
	undo.push(func() { _ = st.DeleteAttachment(context.WithoutCancel(ctx), key) })
	if err := fault.Step(ctx, "record"); err != nil {
		return nil, err
	}
	if delegated != "" {
		// The record comes first, so that a DEL after a crash here still
		// runs the delegate's DEL.
		prev, err := delegateAdd(ctx, conf, delegated)
		if err != nil {
			return nil, err
		}
		undo.push(func() { _ = delegateDel(context.WithoutCancel(ctx), conf, delegated) })
		if delegated == usedDelegate {
			done = true
			return prev, nil
		}
		conf.PrevResult = prev
	}
	var ends []*link.Endpoint
	for _, l := range links {
		if err := l.Create(ctx); err != nil {
			return nil, linkError(err)
		}
		undo.push(func() { _ = l.Remove(context.WithoutCancel(ctx)) })
		ends = append(ends, l.pod)
	}
	if len(decl.Links) > 0 || decl.LegacyConsent {
		made, err := p.addPodLinks(ctx, conf, st, podNS, key, owner, pod, decl, args.Netns, &undo)
		if err != nil {
			return nil, err
		}
		ends = append(ends, made...)
	}
	res, err = buildResult(conf, args, ends)
	if err != nil {
		return nil, err
	}
	done = true
	return res, nil
}

func (p *Plugin) addPodLinks(ctx context.Context, conf *netconf.NetConf, st store.Store, podNS ns.NetNS, key store.AttachmentKey, o owner, pod topology.PodID, decl *topology.Declaration, netns string, undo *undoStack) ([]*link.Endpoint, error) {
	parkNS, err := openParking(ctx, st, conf.Store.Dir, true)
	if err != nil {
		return nil, types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	defer parkNS.Close()
	park, err := link.OpenParking(parkNS)
	if err != nil {
		return nil, linkError(err)
	}
	defer park.Close()
	linker := &podLinker{st: st, park: park, podNS: podNS, key: key, owner: o, pod: pod.String(), undo: undo}
	if err := linker.declare(ctx, decl, pod.UID, netns); err != nil {
		return nil, err
	}
	return linker.made, nil
}

// declaredPodLinks gathers a pod's pod links: peer.pod links of the
// network config, then those of its annotations. Their names may not clash
// with each other, with other static links or, when another plugin owns it,
// with CNI_IFNAME.
func declaredPodLinks(conf *netconf.NetConf, pod topology.PodID, ifName string) (*topology.Declaration, error) {
	static, err := topology.StaticPodLinks(conf.Links, pod, conf.AllowCrossNamespace)
	if err != nil {
		return nil, err
	}
	decl, err := topology.Declared(conf.RuntimeConfig.PodAnnotations, pod, conf.AllowCrossNamespace, conf.MaxLinksPerPod)
	if err != nil {
		return nil, err
	}
	staticNames := map[string]bool{}
	for _, l := range conf.Links {
		staticNames[l.Name] = true
	}
	for _, l := range decl.Links {
		switch {
		case staticNames[l.Spec.Name]:
			return nil, netconf.Invalid("annotation "+topology.LinksAnnotation, l.Spec.Name, "is also a link in the network config")
		case conf.TakesIfName() && l.Spec.Name == ifName:
			return nil, netconf.Invalid("annotation "+topology.LinksAnnotation, l.Spec.Name, "is CNI_IFNAME, which belongs to the main plugin when ratchet is chained (or to bootNetwork)")
		}
	}
	decl.Links = append(static, decl.Links...)
	if len(decl.Links) > conf.MaxLinksPerPod {
		return nil, netconf.Invalid("links", fmt.Sprintf("(%d links with the annotation's)", len(decl.Links)), fmt.Sprintf("more than maxLinksPerPod (%d)", conf.MaxLinksPerPod))
	}
	return decl, nil
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
	if rec == nil {
		// Nothing recorded (a DEL after a failed or crashed ADD): fall back
		// to what the runtime says.
		pod, _ := topology.PodFromArgs(args.Args, args.ContainerID)
		rec = &store.Attachment{AttachmentKey: key, Netns: args.Netns, Pod: pod.String()}
	}
	if args.Netns != "" {
		rec.Netns = args.Netns
	}
	removed, err := release(ctx, st, conf, rec)
	if err != nil {
		log.Error("DEL failed", "error", err)
		return err
	}
	log.Info("DEL done", "removed", removed)
	return nil
}

// release undoes an attachment: its netdevs (static links and its pod
// ends, whose parked ends go with them), its pod-link records, its record.
func release(ctx context.Context, st store.Store, conf *netconf.NetConf, rec *store.Attachment) (int, error) {
	removed := 0
	// The peer namespaces too: with an empty CNI_NETNS (as ctr sends) the
	// recorded pod path may be gone while the namespace itself lives on.
	for _, path := range append([]string{rec.Netns}, rec.PeerNetns...) {
		n, err := removeAttachment(path, ownerOf(rec.AttachmentKey))
		if err != nil {
			return removed, types.NewError(netconf.ErrLinkFailed, err.Error(), "")
		}
		removed += n
	}
	if rec.Pod != "" {
		var park *link.Parking
		if parkNS, err := openParking(ctx, st, conf.Store.Dir, false); err == nil {
			defer parkNS.Close()
			if park, err = link.OpenParking(parkNS); err != nil {
				return removed, linkError(err)
			}
			defer park.Close()
		}
		if err := releasePodLinks(ctx, st, park, rec.Pod, rec.AttachmentKey); err != nil {
			return removed, storeError(err)
		}
	}
	for _, which := range delegatesOf(conf, rec) {
		if err := delegateDel(ctx, conf, which); err != nil {
			return removed, err
		}
	}
	if err := st.DeleteAttachment(ctx, rec.AttachmentKey); err != nil {
		return removed, storeError(err)
	}
	return removed, nil
}

// delegatesOf returns the delegates whose DEL an attachment needs: the one
// it recorded, or, with no record, every one configured (DEL is idempotent).
func delegatesOf(conf *netconf.NetConf, rec *store.Attachment) []string {
	if rec.Delegated != "" {
		return []string{rec.Delegated}
	}
	if !rec.Created.IsZero() {
		return nil
	}
	var all []string
	if conf.HasDelegate() {
		all = append(all, usedDelegate)
	}
	if conf.HasBootNetwork() {
		all = append(all, usedBootNetwork)
	}
	return all
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
	pod, err := topology.PodFromArgs(args.Args, args.ContainerID)
	if err != nil {
		return err
	}
	decl, err := declaredPodLinks(conf, pod, args.IfName)
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
	key := attachmentKey(conf, args)
	links, err := buildStatic(conf, podNS, host, ownerOf(key))
	if err != nil {
		return err
	}
	defer links.close()
	for _, l := range links {
		if err := l.Verify(ctx); err != nil {
			return types.NewError(netconf.ErrCheckFailed, err.Error(), "")
		}
	}
	if len(decl.Links) == 0 && !decl.LegacyConsent {
		return nil
	}
	st, err := openStore(conf)
	if err != nil {
		return err
	}
	defer st.Close()
	return verifyPodLinks(ctx, st, conf, podNS, key, pod.String(), decl)
}

// verifyPodLinks checks each pod link end this attachment holds: its
// interface as declared, its parked end, and, when the peer is there, that
// the two are stitched. A link whose peer has not come (pending) is fine.
func verifyPodLinks(ctx context.Context, st store.Store, conf *netconf.NetConf, podNS ns.NetNS, key store.AttachmentKey, pod string, decl *topology.Declaration) error {
	mismatch := func(format string, a ...any) error {
		return types.NewError(netconf.ErrCheckFailed, fmt.Sprintf(format, a...), "")
	}
	parkNS, err := openParking(ctx, st, conf.Store.Dir, false)
	if err != nil {
		return mismatch("pod links: the parking namespace is gone: %v", err)
	}
	defer parkNS.Close()
	park, err := link.OpenParking(parkNS)
	if err != nil {
		return linkError(err)
	}
	defer park.Close()
	recs, err := st.LinksOf(ctx, pod)
	if err != nil {
		return storeError(err)
	}
	held := map[string]bool{}
	for _, rec := range recs {
		mine, other := endOf(rec, pod)
		if mine.Attachment == nil || *mine.Attachment != key {
			continue
		}
		held[mine.IfName] = true
		spec, err := specOf(mine, "link "+rec.ID)
		if err != nil {
			return err
		}
		joined := other.Declared && other.Attachment != nil && park.Has(other.Parked, other.ParkedIndex)
		v := &link.Veth{A: spec.Local(), B: link.Endpoint{NS: parkNS, Name: mine.Parked, Down: !joined}, Marker: ownerOf(key).marker(spec.Name)}
		v.A.NS = podNS
		if err := v.Verify(ctx); err != nil {
			return mismatch("%v", err)
		}
		if joined {
			to, err := link.Stitched(parkNS, mine.ParkedIndex)
			if err != nil {
				return linkError(err)
			}
			if to != other.ParkedIndex {
				return mismatch("%s: not joined to %s's %s", mine.IfName, other.Pod, other.IfName)
			}
		}
	}
	for _, l := range decl.Links {
		if !held[l.Spec.Name] {
			return mismatch("pod link %s to %s: this attachment does not hold it", l.Spec.Name, l.Peer)
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
		if _, err := release(ctx, st, conf, rec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rec.AttachmentKey, err))
			continue
		}
		log.Info("GC removed attachment", "attachment", rec.AttachmentKey.String())
	}
	if err := sweepParking(ctx, st, conf); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	return nil
}

// sweepParking deletes parked ends that no recorded attachment owns:
// leftovers of a crash. (A parked end normally goes with its pod end.)
func sweepParking(ctx context.Context, st store.Store, conf *netconf.NetConf) error {
	parkNS, err := openParking(ctx, st, conf.Store.Dir, false)
	if err != nil {
		return nil
	}
	defer parkNS.Close()
	park, err := link.OpenParking(parkNS)
	if err != nil {
		return err
	}
	defer park.Close()
	all, err := st.Attachments(ctx, "")
	if err != nil {
		return err
	}
	owners := map[string]bool{}
	for _, a := range all {
		owners[ownerOf(a.AttachmentKey).prefix] = true
	}
	_, err = park.Remove(func(alias string) bool {
		for prefix := range owners {
			if strings.HasPrefix(alias, prefix) {
				return true
			}
		}
		return !strings.HasPrefix(alias, "ratchet:")
	})
	return err
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

package plugin

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/parking"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/internal/topology"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

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
	res, err := p.add(ctx, conf, args, log)
	if err != nil {
		log.Error("ADD failed", "error", err)
		return nil, nil, err
	}
	log.Info("ADD done", "interfaces", len(res.Interfaces))
	return res, conf, nil
}

func (p *Plugin) add(ctx context.Context, conf *netconf.NetConf, args *skel.CmdArgs, log *slog.Logger) (res *current.Result, err error) {
	// One handle per namespace for the whole ADD. It is closed last, after
	// the undo steps, which use it too.
	k := link.NewKernel()
	k.Fault = p.Fault
	defer k.Close()
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
	if makesNothing(conf, decl) {
		// The installer chains ratchet into every pod's network: a pod
		// that asks for nothing passes through at once, without the node
		// lock or the store, rather than queueing behind a pod with many
		// links. It leaves no record; DEL knows it from the same input.
		return buildResult(conf, args, nil, nil)
	}
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

	// Everything deferred above outlives the undo: its steps use the store,
	// the namespaces and the handle cache. What they use beyond that, the
	// undo owns (podlink.Undo.Own).
	undo := podlink.NewUndo(log)
	done := false
	defer func() { undo.Finish(done) }()
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
	rec.NetnsID, rec.PeerNetnsIDs = nsIDOf(podNS), links.peerNetnsIDs()
	if err := st.PutAttachment(ctx, rec); err != nil {
		return nil, storeError(err)
	}
	undo.Push("delete attachment record", func() error { return st.DeleteAttachment(context.WithoutCancel(ctx), key) })
	if err := k.Step("record"); err != nil {
		return nil, err
	}
	if delegated != "" {
		// The record comes first, so that a DEL after a crash here still
		// runs the delegate's DEL.
		prev, err := delegateAdd(ctx, conf, delegated)
		if err != nil {
			return nil, err
		}
		undo.Push("DEL of "+delegated, func() error { return delegateDel(context.WithoutCancel(ctx), conf, delegated) })
		if delegated == usedDelegate {
			done = true
			return prev, nil
		}
		conf.PrevResult = prev
	}
	var ends []*link.Endpoint
	for _, l := range links {
		if err := l.Create(ctx, k); err != nil {
			return nil, linkError(err)
		}
		undo.Push("remove link "+l.pod.Name, func() error { return l.Remove(context.WithoutCancel(ctx), k) })
		ends = append(ends, l.pod)
	}
	if len(decl.Links) > 0 || decl.LegacyConsent {
		made, err := p.addPodLinks(ctx, k, conf, st, podNS, key, owner, pod, decl, args.Netns, undo)
		if err != nil {
			return nil, err
		}
		ends = append(ends, made...)
	}
	res, err = buildResult(conf, args, ends, annotationEnds(conf, ends))
	if err != nil {
		return nil, err
	}
	if err := k.Step("result"); err != nil {
		return nil, err
	}
	done = true
	return res, nil
}

// makesNothing says whether an ADD with conf and decl has nothing to make
// and nothing to record: no static link, no pod link, no legacy consent,
// no delegate or boot network to run.
func makesNothing(conf *netconf.NetConf, decl *topology.Declaration) bool {
	return len(conf.RawLinks) == 0 && len(decl.Links) == 0 && !decl.LegacyConsent &&
		!conf.HasDelegate() && !conf.HasBootNetwork()
}

// checkParkedRoom refuses, before anything is made, an ADD whose declared
// links could take the parking namespace past maxParkedEnds: a pending
// link costs a veth pair without the peer's consent, so the node bounds
// them all. Each declared link makes at most one parked end, two when a
// legacy primary completes its pair's.
func checkParkedRoom(x *podlink.Executor, conf *netconf.NetConf, decl *topology.Declaration) error {
	need := 0
	for _, l := range decl.Links {
		need++
		if l.PeerEnd != nil {
			need++
		}
	}
	have, err := x.ParkedCount()
	if err != nil {
		return linkError(fmt.Errorf("count the parked ends: %w", err))
	}
	if have+need > conf.MaxParkedEnds {
		return types.NewError(netconf.ErrNodeFull, fmt.Sprintf("the node holds %d parked ends and this pod's %d links would take it past maxParkedEnds (%d)", have, need, conf.MaxParkedEnds), "")
	}
	return nil
}

// annotationEnds names the ends in ends that a pod's annotations chose
// (every pod-link end not in the network config): buildResult keeps their
// addresses and routes out of the result.
func annotationEnds(conf *netconf.NetConf, ends []*link.Endpoint) map[string]bool {
	static := map[string]bool{}
	for _, l := range conf.Links {
		static[l.Name] = true
	}
	chosen := map[string]bool{}
	for _, e := range ends {
		if !static[e.Name] {
			chosen[e.Name] = true
		}
	}
	return chosen
}

func (p *Plugin) addPodLinks(ctx context.Context, k *link.Kernel, conf *netconf.NetConf, st store.Store, podNS ns.NetNS, key store.AttachmentKey, o owner, pod topology.PodID, decl *topology.Declaration, netns string, undo *podlink.Undo) ([]*link.Endpoint, error) {
	defaultMTU := 0
	if multiNode(conf) {
		mtu, err := registerEnds(ctx, conf, key, pod.String(), decl)
		if err != nil {
			return nil, err
		}
		undo.Push("unregister ends", func() error {
			return unregisterEnds(context.WithoutCancel(ctx), conf, key, pod.String(), decl.Names())
		})
		// One MTU for every pod link, whichever node its peer is on, so
		// that the interface never changes when the peer moves.
		defaultMTU = mtu
	}
	parkNS, err := parking.Open(ctx, st, conf.Store.Dir, true)
	if err != nil {
		return nil, types.NewError(netconf.ErrLinkFailed, err.Error(), "")
	}
	// The undo's steps use the parking namespace: it is the undo's to
	// close, after them (and after the executor, which it owns too); k
	// owns the handle in it and is closed after both.
	undo.Own(func() { parkNS.Close() })
	x, err := podlink.NewExecutor(k, parkNS, undo)
	if err != nil {
		return nil, linkError(err)
	}
	if err := checkParkedRoom(x, conf, decl); err != nil {
		return nil, err
	}
	linker := &podLinker{k: k, st: st, x: x, podNS: podNS, key: key, owner: o, pod: pod.String(), undo: undo, log: undo.Logger(), defaultMTU: defaultMTU}
	if err := linker.declare(ctx, decl, pod.UID, netns); err != nil {
		return nil, err
	}
	return linker.made, nil
}

// declaredPodLinks gathers a pod's pod links: peer.pod links of the
// network config, then those of its annotations. Their names may not clash
// with each other or with other static links; a static one may not take
// CNI_IFNAME when another plugin owns it, and an annotation one never
// may: the runtime reports CNI_IFNAME's addresses as the pod's IPs, which
// the pod must not choose.
func declaredPodLinks(conf *netconf.NetConf, pod topology.PodID, ifName string) (*topology.Declaration, error) {
	static, err := topology.StaticPodLinks(conf.Links, pod, conf.AllowCrossNamespace)
	if err != nil {
		return nil, err
	}
	decl, err := topology.Declared(conf.RuntimeConfig.PodAnnotations, pod, topology.Rules{
		AllowCrossNamespace: conf.AllowCrossNamespace, LegacyKeys: conf.LegacyKeys, MaxLinks: conf.MaxLinksPerPod})
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
		case l.Spec.Name == ifName:
			return nil, netconf.Invalid("annotation "+topology.LinksAnnotation, l.Spec.Name, "is CNI_IFNAME, the pod's primary interface, whose addresses are the pod IPs: no annotation link may take it")
		}
	}
	decl.Links = append(static, decl.Links...)
	if len(decl.Links) > conf.MaxLinksPerPod {
		return nil, netconf.Invalid("links", fmt.Sprintf("(%d links with the annotation's)", len(decl.Links)), fmt.Sprintf("more than maxLinksPerPod (%d)", conf.MaxLinksPerPod))
	}
	return decl, nil
}

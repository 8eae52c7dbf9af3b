package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/kind"
	"github.com/ratchet-cni/ratchet/internal/netconf"
	"github.com/ratchet-cni/ratchet/internal/podlink"
	"github.com/ratchet-cni/ratchet/internal/store"
	"github.com/ratchet-cni/ratchet/pkg/link"
)

// linkAddUsage is `ratchetctl link add`'s and `link del`'s part of the usage.
const linkAddUsage = `  ratchetctl link add [--store DIR] [--socket PATH] [--ips A,B]... [--mtu N] [--netem delay=D,jitter=D,loss=P,rate=R]
                      NS/POD:IF NS/POD:IF          link two running pods now, both of this node or one of
                                                   this node and one of another (its ratchetd makes that end);
                                                   A: the first end's address, B: the second's (repeat --ips
                                                   for more, e.g. IPv6)
  ratchetctl link del [--store DIR] [--socket PATH] NS/POD:IF
                                                   remove a link made by link add (both interfaces go)
`

// listFlag is a repeatable flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// addRequest is a parsed `link add`: the two ends, in command-line order,
// and their specs, validated as an annotation's.
type addRequest struct {
	ends  [2]*endRef
	specs [2]*netconf.LinkSpec
}

// parseAdd checks every argument of `link add` before anything is opened;
// an error names the flag or argument.
func parseAdd(pos, ips []string, mtu int, netem string) (*addRequest, error) {
	if len(pos) != 2 {
		return nil, badArg("link add: want two link ends, NAMESPACE/POD:IFNAME NAMESPACE/POD:IFNAME")
	}
	r := &addRequest{}
	for i, a := range pos {
		e, err := parseEndRef(a)
		if err != nil {
			return nil, err
		}
		r.ends[i] = e
	}
	if r.ends[0].pod == r.ends[1].pod {
		return nil, fmt.Errorf("link add %s %s: both ends are in one pod; a pod link joins two pods", pos[0], pos[1])
	}
	var addrs [2][]string
	for _, v := range ips {
		ab := strings.Split(v, ",")
		if len(ab) != 2 || ab[0] == "" || ab[1] == "" {
			return nil, fmt.Errorf("--ips %q: want A,B (the first end's address, then the second's)", v)
		}
		addrs[0], addrs[1] = append(addrs[0], ab[0]), append(addrs[1], ab[1])
	}
	var nspec *netconf.NetemSpec
	if netem != "" {
		nspec = &netconf.NetemSpec{}
		for _, kv := range strings.Split(netem, ",") {
			k, v, ok := strings.Cut(kv, "=")
			var field *string
			switch k {
			case "delay":
				field = &nspec.Delay
			case "jitter":
				field = &nspec.Jitter
			case "loss":
				field = &nspec.Loss
			case "rate":
				field = &nspec.Rate
			}
			if !ok || field == nil || v == "" {
				return nil, fmt.Errorf("--netem %q: want delay=D,jitter=D,loss=P,rate=R (any of them)", netem)
			}
			*field = v
		}
	}
	for i, e := range r.ends {
		other := r.ends[1-i]
		ns, pod, _ := strings.Cut(other.pod, "/")
		spec, err := checkSpec(e, netconf.LinkSpec{Name: e.ifName, IPs: addrs[i], MTU: mtu, Netem: nspec,
			Peer: &netconf.Peer{Namespace: ns, Pod: pod, Name: other.ifName}})
		if err != nil {
			return nil, fmt.Errorf("link add: %w", err)
		}
		r.specs[i] = spec
	}
	return r, nil
}

// checkSpec reads spec, end e's, through JSON, as an annotation's link is
// read, and validates it with the same rules.
func checkSpec(e *endRef, spec netconf.LinkSpec) (*netconf.LinkSpec, error) {
	b, err := json.Marshal(spec)
	if err == nil {
		spec = netconf.LinkSpec{}
		err = json.Unmarshal(b, &spec)
	}
	if err == nil {
		err = spec.Validate(e.String(), netconf.Annotation)
	}
	if err == nil {
		err = netconf.CheckPodLinkName(e.ifName)
	}
	if err != nil {
		return nil, err
	}
	return &spec, nil
}

// linkAdd runs `ratchetctl link add`: both ends are made in the running
// pods' namespaces, stitched and plugged in, and the link recorded as
// added, or, should any step fail, nothing is left of it.
func linkAdd(args []string) error {
	fs := newFlagSet("link add")
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	socket := fs.String("socket", netconf.DefaultAgentSocket, "ratchetd's socket, for links across nodes (store.agentSocket in the network config)")
	var ips listFlag
	fs.Var(&ips, "ips", "A,B: the first end's address and the second's (repeatable)")
	mtu := fs.Int("mtu", 0, "MTU of both interfaces")
	netem := fs.String("netem", "", "declared netem of both interfaces: delay=D,jitter=D,loss=P,rate=R")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	req, err := parseAdd(pos, ips, *mtu, *netem)
	if err != nil {
		return err
	}
	s, err := openSession(*dir)
	if err != nil {
		return err
	}
	defer s.close()
	s.socket = *socket
	return s.add(req)
}

// add makes req's link. Every check that reads the store comes first; the
// kernel refuses an interface name a pod already has, and then the undo
// removes what was made.
func (s *session) add(req *addRequest) (err error) {
	ctx := context.Background()
	if s.x == nil {
		return errors.New("link add: the node has no parking namespace yet (no pod link was ever made here)")
	}
	var keys [2]store.AttachmentKey
	var podNS [2]ns.NetNS
	defer func() {
		for _, n := range podNS {
			if n != nil {
				n.Close()
			}
		}
	}()
	// remote is the argument whose pod is on another node, -1 for none.
	remote := -1
	for i, e := range req.ends {
		pr, err := s.st.Pod(ctx, e.pod)
		if err != nil {
			return err
		}
		if pr == nil {
			if remote >= 0 {
				return fmt.Errorf("link add: neither pod %s nor %s is on this node: run link add on the node of one of them", shown(req.ends[0].pod), shown(e.pod))
			}
			// On another node (its agent makes its end), or nowhere, or
			// a pod that declares no pod link: that node's agent answers.
			remote = i
			continue
		}
		if e.ifName == pr.Attachment.IfName {
			return fmt.Errorf("link add: %s is the pod's CNI interface", shown(e.String()))
		}
		if rec, err := s.st.LinkAt(ctx, e.pod, e.ifName); err != nil {
			return err
		} else if rec != nil {
			if mine, _, ok := rec.End(e.pod, e.ifName); ok && (mine.Declared || mine.Attachment != nil) {
				return fmt.Errorf("link add: %s is already an end of link %s", shown(e.String()), shown(rec.ID))
			}
		}
		recs, err := s.st.LinksOf(ctx, e.pod)
		if err != nil {
			return err
		}
		have := 0
		for _, r := range recs {
			for _, end := range r.Ends {
				if end.Pod == e.pod && (end.Declared || end.Attachment != nil) {
					have++
				}
			}
		}
		if have+1 > netconf.DefaultMaxLinksPerPod {
			return fmt.Errorf("link add: pod %s has %d links: one more would take it past maxLinksPerPod (%d)", shown(e.pod), have, netconf.DefaultMaxLinksPerPod)
		}
		if podNS[i], err = ns.GetNS(pr.Netns); err != nil {
			return fmt.Errorf("link add: pod %s: %w", shown(e.pod), err)
		}
		keys[i] = pr.Attachment
	}
	if have, err := s.x.ParkedCount(); err != nil {
		return err
	} else if want := 2 - min(remote+1, 1); have+want > netconf.DefaultMaxParkedEnds {
		return fmt.Errorf("link add: the node holds %d parked ends: %d more would take it past maxParkedEnds (%d)", have, want, netconf.DefaultMaxParkedEnds)
	}
	id, _ := store.LinkID(req.ends[0].pod, req.ends[0].ifName, req.ends[1].pod, req.ends[1].ifName)
	if prev, err := s.st.Link(ctx, id); err != nil {
		return err
	} else if prev != nil {
		return fmt.Errorf("link add: link %s exists already (declared by one of the pods?)", shown(id))
	}
	rec := &store.LinkRecord{ID: id, Added: true}
	order := [2]int{0, 1} // the record's end of each argument
	if !firstIsEnd0(req) {
		order = [2]int{1, 0}
	}
	for a, i := range order {
		rec.Ends[i] = store.LinkEnd{Pod: req.ends[a].pod, IfName: req.ends[a].ifName, Declared: true}
		if rec.Ends[i].Spec, err = json.Marshal(req.specs[a]); err != nil {
			return err
		}
	}
	undo := podlink.NewUndo(nil)
	ok := false
	defer func() { undo.Finish(ok) }()
	mtu := 0
	if remote >= 0 {
		if mtu, err = s.publish(rec, order, 1-remote, keys[1-remote], undo); err != nil {
			return err
		}
	}
	x := s.x.WithUndo(undo)
	for a, i := range order {
		if a == remote {
			continue // its node's agent made it
		}
		d := podlink.OnAdd(rec, i, keys[a], x.ObserveParked(rec))
		spec, n, key := req.specs[a], podNS[a], keys[a]
		err := x.Apply(ctx, rec, &d, func(int) (*link.Veth, error) {
			return podlink.EndVeth(rec, i, kind.Endpoint(spec.Local(), n), key, mtu), nil
		})
		if err != nil {
			return fmt.Errorf("link add: %s: %w", shown(req.ends[a].String()), err)
		}
		*rec = d.Next
		// The end may be a collector that links are mirrored to.
		e := rec.Ends[i]
		if err := x.RepointMirrors(ctx, s.st, e.Pod, e.IfName, e.ParkedIndex); err != nil {
			return fmt.Errorf("link add: %s: %w", shown(req.ends[a].String()), err)
		}
	}
	if err := x.PlugIn(); err != nil {
		return err
	}
	if err := s.st.PutLinks(ctx, []*store.LinkRecord{rec}); err != nil {
		return err
	}
	ok = true
	return nil
}

// publish hands a link between a pod of this node (argument local, held
// by attachment key) and one on another node to ratchetd, which registers
// the local end and records the link in the cluster, and answers once the
// other node's agent has made and registered its end. It returns the
// tunnel MTU (the local end's default MTU, as for any cross-node link),
// and pushes the withdrawal on undo. rec becomes the local record: only
// the local end is this node's to declare.
func (s *session) publish(rec *store.LinkRecord, order [2]int, local int, key store.AttachmentKey, undo *podlink.Undo) (int, error) {
	mine := order[local]
	req := &agentapi.Request{Op: agentapi.OpLinkAdd, LinkID: rec.ID, Pod: rec.Ends[mine].Pod, IfName: rec.Ends[mine].IfName,
		Attachment: agentapi.Attachment{Network: key.Network, ContainerID: key.ContainerID, IfName: key.IfName}}
	for _, e := range rec.Ends {
		req.Added = append(req.Added, agentapi.AddedEnd{Pod: e.Pod, IfName: e.IfName, Spec: e.Spec})
	}
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	resp, err := agentapi.Call(ctx, s.socket, req)
	if err != nil {
		return 0, fmt.Errorf("link add: pod %s is not on this node: its own node's ratchetd makes its end: %w", shown(rec.Ends[1-mine].Pod), err)
	}
	undo.Push("withdraw link "+rec.ID+" from the cluster", func() error { return s.withdraw(rec.ID, req.Pod, req.IfName, key) })
	rec.AddedAcross = true
	other := &rec.Ends[1-mine]
	other.Declared, other.Spec = false, nil
	return resp.MTU, nil
}

// withdraw asks ratchetd to delete a cross-node added link's record and
// this node's registration of end pod:ifName (held by key); the other
// node's agent then removes its end.
func (s *session) withdraw(id, pod, ifName string, key store.AttachmentKey) error {
	ctx, cancel := context.WithTimeout(context.Background(), agentWait)
	defer cancel()
	_, err := agentapi.Call(ctx, s.socket, &agentapi.Request{Op: agentapi.OpLinkDel, LinkID: id, Pod: pod, IfName: ifName,
		Attachment: agentapi.Attachment{Network: key.Network, ContainerID: key.ContainerID, IfName: key.IfName}})
	if err != nil {
		return fmt.Errorf("link %s: withdraw it from the cluster: %w", shown(id), err)
	}
	return nil
}

// firstIsEnd0 reports whether the first end given is the record's end 0
// (store.LinkID orders a link's ends).
func firstIsEnd0(req *addRequest) bool {
	_, aFirst := store.LinkID(req.ends[0].pod, req.ends[0].ifName, req.ends[1].pod, req.ends[1].ifName)
	return aFirst
}

// linkDel runs `ratchetctl link del`: both interfaces of an added link go
// (their parked ends with them), then its record.
func linkDel(args []string) error {
	fs := newFlagSet("link del")
	dir := fs.String("store", netconf.DefaultStoreDir, "the local store's directory (store.dir in the network config)")
	socket := fs.String("socket", netconf.DefaultAgentSocket, "ratchetd's socket, for links across nodes (store.agentSocket in the network config)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return badArg("link del: want one link end, NAMESPACE/POD:IFNAME")
	}
	e, err := parseEndRef(pos[0])
	if err != nil {
		return err
	}
	s, err := openSession(*dir)
	if err != nil {
		return err
	}
	defer s.close()
	s.socket = *socket
	return s.del(e)
}

func (s *session) del(e *endRef) error {
	ctx := context.Background()
	rec, _, err := s.find(e)
	if err != nil {
		return err
	}
	if !rec.Added {
		return fmt.Errorf("link del: link %s is declared by its pods' annotations, not added by link add: change the annotations", shown(rec.ID))
	}
	return s.remove(ctx, rec)
}

// remove removes both of rec's ends that this node holds (their parked
// ends with them), then its record; an added link across nodes is
// withdrawn from the cluster first.
func (s *session) remove(ctx context.Context, rec *store.LinkRecord) error {
	if rec.AddedAcross {
		// The cluster's record goes first: should this node's removal
		// fail, this node's agent removes the end once it sees it gone.
		// With this node's pod gone, its end holds no attachment: only
		// the record is withdrawn.
		end, key := rec.Ends[0], store.AttachmentKey{}
		for _, e := range rec.Ends {
			if e.Attachment != nil {
				end, key = e, *e.Attachment
			}
		}
		if err := s.withdraw(rec.ID, end.Pod, end.IfName, key); err != nil {
			return fmt.Errorf("link del: %w", err)
		}
	}
	if s.x != nil {
		for i, end := range rec.Ends {
			if end.Attachment == nil {
				continue
			}
			var n ns.NetNS
			if pr, err := s.st.Pod(ctx, end.Pod); err == nil && pr != nil && pr.Attachment == *end.Attachment {
				// A namespace gone is no error: the parked end goes alone.
				if n, err = ns.GetNS(pr.Netns); err != nil {
					n = nil
				}
			}
			err := s.x.RemoveEnd(ctx, rec, i, n)
			if n != nil {
				n.Close()
			}
			if err != nil {
				return fmt.Errorf("link del: %s: %w", endName(end), err)
			}
		}
	}
	return s.st.DeleteLink(ctx, rec.ID)
}

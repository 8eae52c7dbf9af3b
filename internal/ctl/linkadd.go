package ctl

import (
	"context"
	"fmt"
	"strings"

	"github.com/ratchet-cni/ratchet/internal/labop"
	"github.com/ratchet-cni/ratchet/internal/netconf"
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

// parseAdd checks every argument of `link add` before anything is opened;
// an error names the flag or argument.
func parseAdd(pos, ips []string, mtu int, netem string) (*labop.AddRequest, error) {
	if len(pos) != 2 {
		return nil, badArg("link add: want two link ends, NAMESPACE/POD:IFNAME NAMESPACE/POD:IFNAME")
	}
	r := &labop.AddRequest{}
	for i, a := range pos {
		e, err := labop.ParseEnd(a)
		if err != nil {
			return nil, err
		}
		r.Ends[i] = e
	}
	if r.Ends[0].Pod == r.Ends[1].Pod {
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
	for i, e := range r.Ends {
		other := r.Ends[1-i]
		ns, pod, _ := strings.Cut(other.Pod, "/")
		spec, err := labop.CheckSpec(e, netconf.LinkSpec{Name: e.IfName, IPs: addrs[i], MTU: mtu, Netem: nspec,
			Peer: &netconf.Peer{Namespace: ns, Pod: pod, Name: other.IfName}})
		if err != nil {
			return nil, fmt.Errorf("link add: %w", err)
		}
		r.Specs[i] = spec
	}
	return r, nil
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
	s, err := labop.Open(context.Background(), *dir, *socket)
	if err != nil {
		return storeFlag(err)
	}
	defer s.Close()
	return s.Add(context.Background(), req)
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
	e, err := labop.ParseEnd(pos[0])
	if err != nil {
		return err
	}
	s, err := labop.Open(context.Background(), *dir, *socket)
	if err != nil {
		return storeFlag(err)
	}
	defer s.Close()
	return s.Del(e)
}

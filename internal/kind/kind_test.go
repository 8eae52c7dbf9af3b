package kind

import (
	"errors"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ratchet-cni/ratchet/internal/netconf"
)

func load(links string) (*netconf.NetConf, error) {
	return netconf.Load([]byte(`{"cniVersion":"1.0.0","name":"lab","links":[`+links+`]}`), "eth0")
}

func TestRegistry(t *testing.T) {
	names, flags := map[string]bool{}, map[string]bool{}
	for _, u := range units {
		if names[u.Name] {
			t.Errorf("kind %q registered twice", u.Name)
		}
		names[u.Name] = true
		if u.Validate == nil {
			t.Errorf("kind %q validates nothing", u.Name)
		}
		if (u.New == nil) == (u.InPeer == nil) {
			t.Errorf("kind %q: want either a sub-object (New) or a peer field (InPeer)", u.Name)
		}
		if u.Build == nil && u.Name != netconf.KindPod {
			t.Errorf("kind %q builds no link", u.Name)
		}
		if u.Flag != nil {
			if flags[u.Flag.Name] {
				t.Errorf("flag -%s taken twice", u.Flag.Name)
			}
			flags[u.Flag.Name] = true
		}
		if got, ok := Lookup(u.Name); !ok || got.Name != u.Name {
			t.Errorf("Lookup(%q) = %q, %v", u.Name, got.Name, ok)
		}
	}
	if got := len(Flags()); got != 3 {
		t.Errorf("%d kinds with a connect flag, want 3 (-x, -M, -V)", got)
	}
}

func TestValidKinds(t *testing.T) {
	for raw, want := range map[string]string{
		`{"name":"v1","vlan":{"master":"eth0","id":42}}`:                         "vlan",
		`{"name":"v1","vlan":{"master":"eth0","id":4094},"mtu":1400}`:            "vlan",
		`{"name":"m1","macvlan":{"master":"eth0","mode":"vepa"}}`:                "macvlan",
		`{"name":"x1","vxlan":{"remote":"2001:db8::1","vni":16777215,"port":1}}`: "vxlan",
		`{"name":"n1","peer":{"netns":"red","name":"n2"}}`:                       netconf.KindNetns,
		`{"name":"p1","peer":{"pod":"r2","name":"p2"}}`:                          netconf.KindPod,
	} {
		conf, err := load(raw)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if got := conf.Links[0].Kind(); got != want {
			t.Errorf("%s: kind %q, want %q", raw, got, want)
		}
	}
	conf, err := load(`{"name":"v1","vlan":{"master":"bond0","id":7}}`)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := conf.Links[0].Spec.(*Vlan); !ok || v.Master != "bond0" || v.ID != 7 {
		t.Fatalf("vlan sub-object %#v", conf.Links[0].Spec)
	}
}

// Each rejection is code 7 naming the field and its value.
func TestInvalidKinds(t *testing.T) {
	for _, c := range []struct{ raw, field, value string }{
		{`{"name":"v1","vlan":{"master":"eth0","id":0}}`, "links[0].vlan.id", "0"},
		{`{"name":"v1","vlan":{"master":"eth0","id":4095}}`, "links[0].vlan.id", "4095"},
		{`{"name":"v1","vlan":{"id":5}}`, "links[0].vlan.master", `""`},
		{`{"name":"v1","vlan":{"master":"a-name-too-long-0","id":5}}`, "links[0].vlan.master", `"a-name-too-long-0"`},
		{`{"name":"v1","vlan":{"master":"eth0","id":"5"}}`, "links[0]", "id"},
		{`{"name":"m1","macvlan":{"master":"eth0","mode":"turbo"}}`, "links[0].macvlan.mode", `"turbo"`},
		{`{"name":"m1","macvlan":{"master":"a/b"}}`, "links[0].macvlan.master", `"a/b"`},
		{`{"name":"x1","vxlan":{"remote":"192.0.2.1","vni":16777216}}`, "links[0].vxlan.vni", "16777216"},
		{`{"name":"x1","vxlan":{"remote":"192.0.2.1","vni":0}}`, "links[0].vxlan.vni", "0"},
		{`{"name":"x1","vxlan":{"remote":"192.0.2.1","vni":5,"port":65536}}`, "links[0].vxlan.port", "65536"},
		{`{"name":"x1","vxlan":{"remote":"nowhere","vni":5}}`, "links[0].vxlan.remote", `"nowhere"`},
		{`{"name":"n1","peer":{"netns":"/run/../x"}}`, "links[0].peer.netns", `"/run/../x"`},
		{`{"name":"n1","peer":{"netns":"red","ips":["192.0.2.300/24"]}}`, "links[0].peer.ips[0]", `"192.0.2.300/24"`},
		{`{"name":"n1","peer":{"netns":"red","mtu":67}}`, "links[0].peer.mtu", "67"},
		{`{"name":"p1","peer":{"pod":"R2","name":"p2"}}`, "links[0].peer.pod", `"R2"`},
		{`{"name":"p1","peer":{"pod":"r2"}}`, "links[0].peer.name", `""`},
	} {
		_, err := load(c.raw)
		var e *types.Error
		if !errors.As(err, &e) || e.Code != types.ErrInvalidNetworkConfig || !strings.Contains(e.Msg, c.field) || !strings.Contains(e.Msg, c.value) {
			t.Errorf("%s: got %v, want code 7 naming %s and %s", c.raw, err, c.field, c.value)
		}
	}
}

func TestAnnotationsRefuseHostKinds(t *testing.T) {
	for _, u := range units {
		if !u.HostResource || u.New == nil {
			continue
		}
		spec := netconf.LinkSpec{Name: "a"}
		spec.SetSpec(u.Name, u.New())
		err := spec.Validate("links[0]", netconf.Annotation)
		var e *types.Error
		if !errors.As(err, &e) || !strings.Contains(e.Msg, "links[0]."+u.Name+" is not allowed in pod annotations") {
			t.Errorf("%s from an annotation: %v", u.Name, err)
		}
	}
}

func TestPeerEndTakesTheLinkName(t *testing.T) {
	conf, err := load(`{"name":"in1","peer":{"netns":"red","ips":["192.0.2.2/24"]}}`)
	if err != nil {
		t.Fatal(err)
	}
	end, err := peerEnd(&conf.Links[0], "links[0]")
	if err != nil || end.Name != "in1" || end.Addrs[0].String() != "192.0.2.2/24" {
		t.Fatalf("peer end %+v, %v: its name defaults to the link's", end, err)
	}
}

func TestFlags(t *testing.T) {
	for _, c := range []struct {
		flag, value string
		ok          bool
	}{
		{"x", "eth0,192.0.2.1,5", true},
		{"x", "eth0,2001:db8::1,16777215,port=4790", true},
		{"x", "eth0,192.0.2.1,16777216", false},
		{"x", "eth0,192.0.2.1,5,port=65536", false},
		{"x", "eth0,192.0.2.1", false},
		{"M", "eth0,passthru", true},
		{"M", "eth0,turbo", false},
		{"M", ",bridge", false},
		{"V", "eth0,4094", true},
		{"V", "eth0,4095", false},
		{"V", "eth0,0", false},
		{"V", "eth0", false},
	} {
		var flag *Flag
		for _, u := range Flags() {
			if u.Flag.Name == c.flag {
				flag = u.Flag
			}
		}
		if flag == nil {
			t.Fatalf("no kind has flag -%s", c.flag)
		}
		newLink, err := flag.Parse(c.value)
		if c.ok != (err == nil) || c.ok != (newLink != nil) {
			t.Errorf("-%s %q: %v", c.flag, c.value, err)
		}
		if err != nil && !strings.Contains(err.Error(), "-"+c.flag+" \""+c.value+"\"") {
			t.Errorf("-%s %q: error %q does not name the flag and value", c.flag, c.value, err)
		}
	}
}

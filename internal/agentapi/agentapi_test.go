package agentapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/ratchet-cni/ratchet/internal/agentapi"
	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// serve answers every connection on a fresh socket with handle.
func serve(t *testing.T, handle func(*agentapi.Request) *agentapi.Response) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go agentapi.Serve(conn, time.Second, handle)
		}
	}()
	return path
}

func TestCallAndServe(t *testing.T) {
	path := serve(t, func(r *agentapi.Request) *agentapi.Response {
		if r.Op == agentapi.OpHealth {
			return &agentapi.Response{Code: 11, Error: "etcd down"}
		}
		return &agentapi.Response{MTU: 1450 + len(r.Ends)}
	})
	ctx := context.Background()
	resp, err := agentapi.Call(ctx, path, &agentapi.Request{Op: agentapi.OpRegister, Node: "n1"})
	if err != nil || resp.MTU != 1450 {
		t.Fatalf("register: %+v, %v", resp, err)
	}
	_, err = agentapi.Call(ctx, path, &agentapi.Request{Op: agentapi.OpHealth})
	var callErr *agentapi.CallError
	if !errors.As(err, &callErr) || callErr.Code != 11 || callErr.Msg != "etcd down" {
		t.Fatalf("health: %v, want the agent's code 11", err)
	}
	if _, err := agentapi.Call(ctx, filepath.Join(t.TempDir(), "none.sock"), &agentapi.Request{}); !errors.Is(err, agentapi.ErrUnreachable) {
		t.Fatalf("no agent: %v, want ErrUnreachable", err)
	}
}

// A request that is not JSON gets code 6, and the server keeps serving.
func TestServeRefusesGarbage(t *testing.T) {
	path := serve(t, func(*agentapi.Request) *agentapi.Response { return &agentapi.Response{} })
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("{not json\n")); err != nil {
		t.Fatal(err)
	}
	resp := &agentapi.Response{}
	if err := json.NewDecoder(conn).Decode(resp); err != nil || resp.Code != 6 {
		t.Fatalf("garbage: %+v, %v; want code 6", resp, err)
	}
	if _, err := agentapi.Call(context.Background(), path, &agentapi.Request{Op: agentapi.OpHealth}); err != nil {
		t.Fatalf("after garbage: %v", err)
	}
}

// The wire format is what plugin and agent binaries of different builds
// agree on: its field names are pinned here.
func TestRequestWireFormat(t *testing.T) {
	att := agentapi.Attachment{Network: "lab", ContainerID: "c1", IfName: "eth0"}
	req := &agentapi.Request{Op: agentapi.OpRegister, Node: "n1", Prefix: "/r", Ends: []*agentapi.End{{
		Pod: "ns/a", IfName: "e1", PeerPod: "ns/b", PeerIfName: "e2", Node: "n1", Attachment: att}}}
	got, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"op":"register","node":"n1","prefix":"/r","ends":[{"pod":"ns/a","ifName":"e1","peerPod":"ns/b","peerIfName":"e2","node":"n1",` +
		`"attachment":{"network":"lab","containerID":"c1","ifName":"eth0"}}]}`
	if string(got) != want {
		t.Fatalf("register request\n got %s\nwant %s", got, want)
	}
	unreg := &agentapi.Request{Op: agentapi.OpUnregister, Node: "n1", Prefix: "/r", Attachment: att, Pod: "ns/a", IfNames: []string{"e1"}}
	if got, _ = json.Marshal(unreg); string(got) != `{"op":"unregister","node":"n1","prefix":"/r","attachment":{"network":"lab","containerID":"c1","ifName":"eth0"},"pod":"ns/a","ifNames":["e1"]}` {
		t.Fatalf("unregister request %s", got)
	}
}

// A health answer that fails carries the health with it: the caller gets
// both the CNI error (code 50, every failing check's reason in one line)
// and each check, as ratchetctl health prints them.
func TestHealthCrossesTheWire(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := &agentapi.Health{Live: true, Checks: []agentapi.Check{
		{Name: "etcd", Reason: "no answer", Since: since},
		{Name: "parking", OK: true},
		{Name: "reconcile", Reason: "3 passes failed"},
	}}
	if got, want := h.Reason(), "etcd: no answer; reconcile: 3 passes failed"; got != want {
		t.Fatalf("Reason() = %q, want %q", got, want)
	}
	sock := serve(t, func(req *agentapi.Request) *agentapi.Response {
		return &agentapi.Response{Code: 50, Error: "not ready: " + h.Reason(), Health: h}
	})
	resp, err := agentapi.Call(context.Background(), sock, &agentapi.Request{Op: agentapi.OpHealth})
	var callErr *agentapi.CallError
	if !errors.As(err, &callErr) || callErr.Code != 50 || resp == nil || resp.Health == nil {
		t.Fatalf("Call: %v, %+v", err, resp)
	}
	got := resp.Health
	if got.Ready || !got.Live || len(got.Checks) != 3 || !got.Checks[0].Since.Equal(since) || got.Checks[1].Reason != "" || got.Reason() != h.Reason() {
		t.Fatalf("health across the wire: %+v", got)
	}
}

// TestLinkSettingsRelative: settings relative to either end of a link
// come back in the link's order, and mean the same from the other end.
func TestLinkSettingsRelative(t *testing.T) {
	toA, toB := &linkparam.Impairment{Rate: 8000}, &linkparam.Impairment{Loss: 1}
	order := [2]*linkparam.Impairment{toA, toB}
	for mine := range 2 {
		l := agentapi.Relative(true, order, mine)
		if l.Toward != order[mine] || l.From != order[1-mine] || !l.Pulled {
			t.Errorf("relative to end %d: %+v", mine, l)
		}
		if pulled, got := l.Ordered(mine); !pulled || got != order {
			t.Errorf("end %d: back in order %v %v, want %v", mine, pulled, got, order)
		}
		// Named by the other end, in the other order: the same link.
		if _, got := l.Ordered(1 - mine); got[0] != order[1] || got[1] != order[0] {
			t.Errorf("end %d, the other order: %v", mine, got)
		}
	}
	var none *agentapi.LinkSettings
	if pulled, got := none.Ordered(0); pulled || got[0] != nil || got[1] != nil {
		t.Errorf("no settings: %v %v", pulled, got)
	}
}

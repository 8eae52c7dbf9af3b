// Package agentapi is the protocol between the plugin and ratchetd, the
// node agent, over a unix socket: one JSON request and one JSON response
// per connection. It is all the plugin links of the multi-node machinery,
// so it stays small: no RPC framework, no HTTP.
package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// Operations.
const (
	// OpRegister records a pod's link ends in the cluster and returns the
	// node's tunnel MTU.
	OpRegister = "register"
	// OpUnregister removes ends an attachment registered.
	OpUnregister = "unregister"
	// OpHealth answers the agent's health (Response.Health): whether it
	// reaches the cluster store, sees the parking namespace the plugin
	// uses and keeps its tunnels right. An agent that is not ready also
	// answers code 50 with the reasons. Node and Prefix may be empty (as
	// from `ratchetctl health`): then the agent does not check them.
	OpHealth = "health"
	// OpLinkSettings reads (Settings nil) or writes a cross-node link's
	// run-time settings in the cluster, for `ratchetctl link` on any node:
	// the agents of both ends apply them on their own parked ends. A
	// write names the Revision its change was based on, as a read
	// answered it; a link changed since is refused (code 11: read again).
	// Node and Prefix may be empty, as ratchetctl knows neither.
	OpLinkSettings = "linkSettings"
	// OpLinkAdd publishes a cross-node link that `ratchetctl link add`
	// makes on running pods: the agent registers the local end (Pod,
	// IfName, Attachment), records the link (LinkID, Added) in the cluster
	// for the agent of the peer pod's node, which makes the peer's end,
	// and answers once that end is registered, with the node's tunnel MTU.
	// If the peer's end cannot be made, or no node makes it in time, the
	// agent withdraws what it wrote and answers why. Node and Prefix may
	// be empty.
	OpLinkAdd = "linkAdd"
	// OpLinkDel withdraws a link OpLinkAdd published: the local end's
	// registration (Pod, IfName, Attachment) and the link's record
	// (LinkID), whereupon the peer's agent removes its end. Node and
	// Prefix may be empty.
	OpLinkDel = "linkDel"
)

// Request is what the plugin asks.
type Request struct {
	Op string `json:"op"`
	// Node and Prefix are the plugin's node.name and store.prefix: the agent
	// refuses a request meant for another node or cluster.
	Node   string `json:"node"`
	Prefix string `json:"prefix"`
	// Ends to register (OpRegister).
	Ends []*End `json:"ends,omitempty"`
	// Attachment, Pod and IfNames say which ends to unregister.
	Attachment Attachment `json:"attachment,omitzero"`
	Pod        string     `json:"pod,omitempty"`
	IfNames    []string   `json:"ifNames,omitempty"`
	// LinkID, Pod and IfName name a link and one of its ends
	// (OpLinkSettings); Settings are relative to that end, and Revision
	// is what the write is based on.
	LinkID   string        `json:"linkID,omitempty"`
	IfName   string        `json:"ifName,omitempty"`
	Settings *LinkSettings `json:"settings,omitempty"`
	Revision int64         `json:"revision,omitempty"`
	// Added are the ends of the link OpLinkAdd publishes, in the order of
	// LinkID's ends.
	Added []AddedEnd `json:"added,omitempty"`
}

// AddedEnd is one end of a link `ratchetctl link add` makes: the pod's
// interface and its spec, as an annotation's link (JSON).
type AddedEnd struct {
	Pod    string          `json:"pod"`
	IfName string          `json:"ifName"`
	Spec   json.RawMessage `json:"spec"`
}

// LinkSettings are a link's run-time settings relative to one of its
// ends, the one a request names, so that they mean the same whichever
// order each node's records keep the ends in.
type LinkSettings struct {
	// Pulled: the cable is pulled, both ends down.
	Pulled bool `json:"pulled,omitempty"`
	// Toward impairs the traffic toward the named end's pod; From the
	// traffic toward the other end's pod. nil: none.
	Toward *linkparam.Impairment `json:"toward,omitempty"`
	From   *linkparam.Impairment `json:"from,omitempty"`
}

// The protocol has its own types rather than the store's records, so that
// the plugin and the agent agree on the wire format whatever the store
// keeps; the agent turns them into registry records.

// Attachment names the CNI attachment (network name, container id,
// interface name) that made some ends.
type Attachment struct {
	Network     string `json:"network"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
}

// End is one pod's end of a pod link: the pod's interface IfName, the
// peer it declares, and the node and attachment that made it.
type End struct {
	Pod        string     `json:"pod"`
	IfName     string     `json:"ifName"`
	PeerPod    string     `json:"peerPod"`
	PeerIfName string     `json:"peerIfName"`
	Node       string     `json:"node"`
	Attachment Attachment `json:"attachment"`
}

// Relative returns settings kept in some order of a link's two ends
// (pulled, and toward[i] the impairment toward end i's pod) relative to
// end mine of that order.
func Relative(pulled bool, toward [2]*linkparam.Impairment, mine int) *LinkSettings {
	return &LinkSettings{Pulled: pulled, Toward: toward[mine], From: toward[1-mine]}
}

// Ordered returns the settings in an order of the link's two ends where
// the named end is end mine; Relative's inverse.
func (l *LinkSettings) Ordered(mine int) (pulled bool, toward [2]*linkparam.Impairment) {
	if l == nil {
		return false, toward
	}
	toward[mine], toward[1-mine] = l.Toward, l.From
	return l.Pulled, toward
}

// Response is what the agent answers.
type Response struct {
	// Code is a CNI error code when the request failed (11: the cluster
	// store is unreachable, try again later), with Error saying why.
	Code  uint   `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
	// MTU is the node's tunnel MTU: what a pod link's interface gets when
	// its spec sets none, so that it never changes when the peer moves
	// between this node and another.
	MTU int `json:"mtu,omitempty"`
	// Health is the agent's health (OpHealth).
	Health *Health `json:"health,omitempty"`
	// Settings and Revision are a link's run-time settings in the cluster
	// and their revision (0: none yet), relative to the end the request
	// named (OpLinkSettings).
	Settings *LinkSettings `json:"settings,omitempty"`
	Revision int64         `json:"revision,omitempty"`
}

// Health is what the agent knows of its own health.
type Health struct {
	// Ready says every check passes: the agent can make the tunnels of
	// cross-node links.
	Ready bool `json:"ready"`
	// Live says the agent's work loop is not stuck; a restart helps only
	// when it is not.
	Live   bool    `json:"live"`
	Checks []Check `json:"checks"`
}

// Check is one thing the agent checks.
type Check struct {
	// Name is "etcd", "parking" or "reconcile".
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Reason says, when not OK, what is wrong and what to fix.
	Reason string `json:"reason,omitempty"`
	// Since is when the check last changed between OK and not.
	Since time.Time `json:"since,omitzero"`
}

// Reason joins the reasons of the checks that fail, for a one-line answer.
func (h *Health) Reason() string {
	var s string
	for _, c := range h.Checks {
		if !c.OK {
			if s != "" {
				s += "; "
			}
			s += c.Name + ": " + c.Reason
		}
	}
	return s
}

// ErrUnreachable says the agent's socket did not answer.
var ErrUnreachable = errors.New("ratchetd unreachable")

// maxMessage bounds a message: a pod's ends at maxLinksPerPod fit well.
const maxMessage = 8 << 20

// Call sends req to the agent at socket and returns its response. A
// response carrying an error is returned as a *CallError.
func Call(ctx context.Context, socket string, req *Request) (*Response, error) {
	// DialUnix, not a Dialer: it needs no resolver, which would make the
	// plugin binary bigger (docs/performance.md).
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %w", ErrUnreachable, socket, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("%w at %s: send: %w", ErrUnreachable, socket, err)
	}
	resp := &Response{}
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(resp); err != nil {
		return nil, fmt.Errorf("%w at %s: receive: %w", ErrUnreachable, socket, err)
	}
	if resp.Error != "" {
		return resp, &CallError{Code: resp.Code, Msg: resp.Error}
	}
	return resp, nil
}

// CallError is a failure the agent reported.
type CallError struct {
	Code uint
	Msg  string
}

func (e *CallError) Error() string { return e.Msg }

// Serve answers one connection with handle; a server calls it per accepted
// connection.
func Serve(conn net.Conn, timeout time.Duration, handle func(*Request) *Response) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	req := &Request{}
	var resp *Response
	if err := json.NewDecoder(io.LimitReader(conn, maxMessage)).Decode(req); err != nil {
		resp = &Response{Code: 6, Error: "undecodable request: " + err.Error()}
	} else {
		resp = handle(req)
	}
	_ = json.NewEncoder(conn).Encode(resp)
}

// Package netconf defines ratchet's network configuration: its types,
// defaults, decoding and validation. Everything a CNI operation reads from
// stdin is checked here, before any side effect.
package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ratchet-cni/ratchet/internal/linkparam"
)

// Defaults.
const (
	DefaultStoreDir     = "/var/lib/cni/ratchet"
	DefaultStorePrefix  = "/ratchet"
	DefaultAgentSocket  = "/run/ratchet/ratchetd.sock"
	DefaultStoreTimeout = 5 * time.Second
	// DefaultLockTimeout is how long an operation waits for the node lock:
	// long enough for a queue of honest operations (the longest, an ADD of
	// maxLinksPerPod links, takes about a second), short enough that one
	// stuck holder shows as "try again later" rather than as a hung runtime.
	DefaultLockTimeout = 30 * time.Second
	// DefaultMaxLinksPerPod bounds the links of one attachment. The
	// largest devices a lab emulates (a modular chassis, a 64- or
	// 128-port spine) have 128 ports; each link costs two netdevs on the
	// node (the pod's interface and its parked end), the ADD of a pod
	// holds the node lock for all of them, and a pending link needs no
	// consent. A lab that needs more sets maxLinksPerPod.
	DefaultMaxLinksPerPod = 128
	// DefaultMaxParkedEnds bounds the parked ends of a node (one per pod
	// link end on the node, whatever its state): 64 pods with
	// DefaultMaxLinksPerPod links each, or a few thousand links of lab
	// pods, is more than one node runs, and it stops one namespace's pods
	// from filling the node with netdevs nobody consented to.
	DefaultMaxParkedEnds = 8192
	DefaultVXLANPort     = linkparam.DefaultVXLANPort
	// DefaultVNIFirst is the first VNI of the default range, which ends
	// at MaxVNI.
	DefaultVNIFirst = 5000
	MaxVNI          = linkparam.MaxVNI
)

// DefaultVNIRange is the VNI range pod links take their VNIs from unless
// vxlan.vniRange says otherwise.
var DefaultVNIRange = strconv.Itoa(DefaultVNIFirst) + "-" + strconv.Itoa(MaxVNI)

// PodAnnotationsCapability is the capability under which containerd and
// CRI-O hand a plugin all pod annotations in runtimeConfig.
const PodAnnotationsCapability = "io.kubernetes.cri.pod-annotations"

// NetConf is ratchet's network configuration, read from stdin.
type NetConf struct {
	types.PluginConf

	// RawLinks are the static links as written; Load decodes them into
	// Links, refusing unknown fields.
	RawLinks       []json.RawMessage `json:"links,omitempty"`
	Links          []LinkSpec        `json:"-"`
	Store          Store             `json:"store"`
	Node           Node              `json:"node"`
	VXLAN          VXLAN             `json:"vxlan"`
	MaxLinksPerPod int               `json:"maxLinksPerPod,omitempty"`
	// MaxParkedEnds bounds the parked ends in the node's parking
	// namespace: an ADD that would make more fails (ErrNodeFull).
	MaxParkedEnds       int    `json:"maxParkedEnds,omitempty"`
	AllowCrossNamespace bool   `json:"allowCrossNamespace,omitempty"`
	LogFile             string `json:"logFile,omitempty"`
	LogLevel            string `json:"logLevel,omitempty"`

	// LegacyKeys honours Ratchet's pod annotations (ratchet: "true",
	// ratchet.primary...), which trust every pod of the namespace that
	// sets ratchet: "true"; without it they are refused (code 7).
	LegacyKeys bool `json:"legacyKeys,omitempty"`

	// Delegate is a whole plugin config run for pods with no ratchet links
	// (Ratchet compatibility).
	Delegate json.RawMessage `json:"delegate,omitempty"`
	// BootNetwork is a plugin config run first for pods with links.
	BootNetwork json.RawMessage `json:"bootNetwork,omitempty"`

	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`

	// OldValidAttachments is the pre-1.1 spelling of ValidAttachments.
	OldValidAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`

	// Chained is true when the config carries a prevResult.
	Chained bool `json:"-"`
}

// RuntimeConfig is what the runtime passes for declared capabilities.
type RuntimeConfig struct {
	PodAnnotations map[string]string `json:"io.kubernetes.cri.pod-annotations,omitempty"`
}

// Store selects and configures the state store.
type Store struct {
	// Type is "local" (default) or "etcd".
	Type      string   `json:"type,omitempty"`
	Dir       string   `json:"dir,omitempty"`
	Endpoints []string `json:"endpoints,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	TLS       *TLS     `json:"tls,omitempty"`
	// Insecure allows plaintext endpoints (http://, or host:port without
	// tls): anyone on the path could then read and rewrite the cluster's
	// state, so it must be asked for.
	Insecure bool   `json:"insecure,omitempty"`
	Timeout  string `json:"timeout,omitempty"`
	// LockTimeout is how long an operation waits for the node lock
	// (LockWait).
	LockTimeout string `json:"lockTimeout,omitempty"`
	// AgentSocket is where ratchetd, the node agent that holds the etcd
	// connection, listens (etcd store only).
	AgentSocket string `json:"agentSocket,omitempty"`
}

// CallTimeout is how long one store call may take: store.timeout, 5 s by
// default.
func (s *Store) CallTimeout() time.Duration {
	if d, err := time.ParseDuration(s.Timeout); err == nil && d > 0 {
		return d
	}
	return DefaultStoreTimeout
}

// LockWait is how long an operation waits for the node lock before it
// gives up with "try again later": store.lockTimeout, 30 s by default.
func (s *Store) LockWait() time.Duration {
	if d, err := time.ParseDuration(s.LockTimeout); err == nil && d > 0 {
		return d
	}
	return DefaultLockTimeout
}

// TLS holds client certificate paths for etcd.
type TLS struct {
	CA   string `json:"ca,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Node describes this node for cross-node links.
type Node struct {
	Name    string `json:"name,omitempty"`
	VtepDev string `json:"vtepDev,omitempty"`
	VtepIP  string `json:"vtepIP,omitempty"`
}

// VXLAN holds cluster-wide tunnel settings.
type VXLAN struct {
	Port     int    `json:"port,omitempty"`
	VNIRange string `json:"vniRange,omitempty"`
	MTU      int    `json:"mtu,omitempty"`
	// UnderlayCIDRs are the prefixes every node's VTEP is in. When set,
	// the agent ignores a node record whose VTEP is outside them (a node
	// that redirects the tunnels towards it elsewhere), and its own VTEP
	// must be inside.
	UnderlayCIDRs []string `json:"underlayCIDRs,omitempty"`
}

// Underlay parses vxlan.underlayCIDRs (validated by ValidateAgent).
func (v *VXLAN) Underlay() ([]netip.Prefix, error) {
	var all []netip.Prefix
	for _, s := range v.UnderlayCIDRs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, Invalid("vxlan.underlayCIDRs", s, "not a CIDR such as 192.0.2.0/24")
		}
		all = append(all, p.Masked())
	}
	return all, nil
}

// PlaintextEndpoint reports whether an etcd client talks to endpoint ep
// unencrypted: http:// or unix://, or host:port when tls (store.tls) is
// not configured.
func PlaintextEndpoint(ep string, tls bool) bool {
	scheme, _, found := strings.Cut(ep, "://")
	if !found {
		return !tls
	}
	return !strings.EqualFold(scheme, "https")
}

// HasBootNetwork says whether a boot network is configured.
func (c *NetConf) HasBootNetwork() bool {
	return len(c.BootNetwork) > 0 && string(c.BootNetwork) != "null"
}

// HasDelegate says whether a delegate is configured.
func (c *NetConf) HasDelegate() bool {
	return len(c.Delegate) > 0 && string(c.Delegate) != "null"
}

// TakesIfName says whether another plugin owns CNI_IFNAME's interface: the
// plugin ratchet is chained after, or the boot network.
func (c *NetConf) TakesIfName() bool { return c.Chained || c.HasBootNetwork() }

// ValidAttachmentsFor returns the attachments a GC call says are valid,
// under either spelling of the key.
func (c *NetConf) ValidAttachmentsFor() []types.GCAttachment {
	return append(append([]types.GCAttachment(nil), c.ValidAttachments...), c.OldValidAttachments...)
}

// Decode parses stdin without validating links: what DEL and GC need,
// which must work even with a config that ADD would now refuse.
func Decode(stdin []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, decodeError(err)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "invalid prevResult: "+err.Error(), "")
		}
		conf.Chained = true
	}
	conf.applyDefaults()
	return conf, nil
}

// Load parses and fully validates stdin for ADD and CHECK. ifName is
// CNI_IFNAME: in first-plugin mode it names a link that has no name; in
// chained mode no link may take it.
func Load(stdin []byte, ifName string) (*NetConf, error) {
	conf, err := Decode(stdin)
	if err != nil {
		return nil, err
	}
	if err := conf.validate(ifName); err != nil {
		return nil, err
	}
	return conf, nil
}

func (c *NetConf) applyDefaults() {
	if c.Store.Type == "" {
		c.Store.Type = "local"
	}
	if c.Store.Dir == "" {
		c.Store.Dir = DefaultStoreDir
	}
	if c.Store.Prefix == "" {
		c.Store.Prefix = DefaultStorePrefix
	}
	if c.Store.AgentSocket == "" {
		c.Store.AgentSocket = DefaultAgentSocket
	}
	if c.MaxLinksPerPod == 0 {
		c.MaxLinksPerPod = DefaultMaxLinksPerPod
	}
	if c.MaxParkedEnds == 0 {
		c.MaxParkedEnds = DefaultMaxParkedEnds
	}
	if c.VXLAN.Port == 0 {
		c.VXLAN.Port = DefaultVXLANPort
	}
	if c.VXLAN.VNIRange == "" {
		c.VXLAN.VNIRange = DefaultVNIRange
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.Node.Name == "" {
		c.Node.Name, _ = os.Hostname()
	}
}

// ValidateAgent checks what the node agent takes from a network config:
// the store (etcd, when store.type is "etcd"), the node and the vxlan
// settings.
func ValidateAgent(c *NetConf) error {
	if !filepath.IsAbs(c.Store.Dir) {
		return Invalid("store.dir", c.Store.Dir, "must be an absolute path")
	}
	if c.Node.Name == "" {
		return Invalid("node.name", "", "no node name and no hostname")
	}
	if c.Store.Type == "etcd" {
		// The local store's agent (ratchetd on one node) has no etcd.
		if err := c.Store.validateEtcd(); err != nil {
			return err
		}
	}
	return c.validateNodeAndVXLAN()
}

func (c *NetConf) validateNodeAndVXLAN() error {
	if err := linkparam.CheckPort(c.VXLAN.Port); err != nil {
		return Invalid("vxlan.port", c.VXLAN.Port, err.Error())
	}
	if _, _, err := ParseVNIRange(c.VXLAN.VNIRange); err != nil {
		return Invalid("vxlan.vniRange", c.VXLAN.VNIRange, err.Error())
	}
	if c.VXLAN.MTU != 0 {
		if err := linkparam.CheckMTU(c.VXLAN.MTU); err != nil {
			return Invalid("vxlan.mtu", c.VXLAN.MTU, err.Error())
		}
	}
	if c.Node.VtepDev != "" {
		if err := CheckIfName(c.Node.VtepDev); err != nil {
			return Invalid("node.vtepDev", c.Node.VtepDev, err.Error())
		}
	}
	if c.Node.VtepIP != "" && net.ParseIP(c.Node.VtepIP) == nil {
		return Invalid("node.vtepIP", c.Node.VtepIP, "not an IP address")
	}
	underlay, err := c.VXLAN.Underlay()
	if err != nil {
		return err
	}
	if c.Node.VtepIP != "" && len(underlay) > 0 {
		a, _ := netip.ParseAddr(c.Node.VtepIP)
		if !slices.ContainsFunc(underlay, func(p netip.Prefix) bool { return p.Contains(a.Unmap()) }) {
			return Invalid("node.vtepIP", c.Node.VtepIP, "is outside vxlan.underlayCIDRs")
		}
	}
	return nil
}

func (c *NetConf) validate(ifName string) error {
	switch c.Store.Type {
	case "local", "etcd":
	default:
		return Invalid("store.type", c.Store.Type, `want "local" or "etcd"`)
	}
	if !filepath.IsAbs(c.Store.Dir) {
		return Invalid("store.dir", c.Store.Dir, "must be an absolute path")
	}
	if c.Store.LockTimeout != "" {
		if d, err := time.ParseDuration(c.Store.LockTimeout); err != nil || d <= 0 {
			return Invalid("store.lockTimeout", c.Store.LockTimeout, `want a positive duration such as "30s"`)
		}
	}
	if c.Store.Type == "etcd" {
		if err := c.Store.validateEtcd(); err != nil {
			return err
		}
	}
	if err := c.validateNodeAndVXLAN(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return Invalid("logLevel", c.LogLevel, `want "debug", "info", "warn" or "error"`)
	}
	if c.LogFile != "" && !filepath.IsAbs(c.LogFile) {
		return Invalid("logFile", c.LogFile, "must be an absolute path")
	}
	if c.MaxLinksPerPod < 0 {
		return Invalid("maxLinksPerPod", c.MaxLinksPerPod, "must be positive")
	}
	if c.MaxParkedEnds < 0 {
		return Invalid("maxParkedEnds", c.MaxParkedEnds, "must be positive")
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"delegate", c.Delegate}, {"bootNetwork", c.BootNetwork}} {
		if err := checkPluginConf(f.name, f.raw); err != nil {
			return err
		}
		if len(f.raw) > 0 && string(f.raw) != "null" && c.Chained {
			return Invalid(f.name, f.name, "Ratchet compatibility mode runs as the first plugin, not chained after another")
		}
	}

	if len(c.RawLinks) > c.MaxLinksPerPod {
		return Invalid("links", fmt.Sprintf("(%d links)", len(c.RawLinks)), fmt.Sprintf("more than maxLinksPerPod (%d)", c.MaxLinksPerPod))
	}
	c.Links = make([]LinkSpec, len(c.RawLinks))
	for i, raw := range c.RawLinks {
		if err := strictUnmarshal(raw, &c.Links[i]); err != nil {
			return Invalid(fmt.Sprintf("links[%d]", i), string(raw), err.Error())
		}
	}
	seen := map[string]int{}
	for i := range c.Links {
		l := &c.Links[i]
		field := fmt.Sprintf("links[%d]", i)
		if l.Name == "" {
			if c.TakesIfName() {
				return Invalid(field+".name", "", "every link needs a name when ratchet is chained after another plugin")
			}
			l.Name = ifName
		}
		if err := l.Validate(field, Static); err != nil {
			return err
		}
		if c.TakesIfName() && l.Name == ifName {
			return Invalid(field+".name", l.Name, "is CNI_IFNAME, which belongs to the main plugin when ratchet is chained (or to bootNetwork)")
		}
		if j, dup := seen[l.Name]; dup {
			return Invalid(field+".name", l.Name, fmt.Sprintf("links[%d] has the same name", j))
		}
		seen[l.Name] = i
	}
	return nil
}

func checkPluginConf(field string, raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var pc types.PluginConf
	if err := json.Unmarshal(raw, &pc); err != nil {
		return Invalid(field, string(raw), "not a plugin configuration object: "+err.Error())
	}
	if pc.Type == "" {
		return Invalid(field+".type", "", "a plugin configuration needs a type")
	}
	return nil
}

// ParseVNIRange parses "first-last".
func ParseVNIRange(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if ok {
		first, err = strconv.Atoi(a)
		if err == nil {
			last, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || first < 1 || last > MaxVNI || first > last {
		return 0, 0, fmt.Errorf("want FIRST-LAST within 1-%d", MaxVNI)
	}
	return first, last, nil
}

// decodeError turns a JSON error into a CNI error: code 6 when stdin is
// not JSON, code 7 naming the field when a known field has the wrong type.
func decodeError(err error) error {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return Invalid(typeErr.Field, typeErr.Value, "want a "+typeErr.Type.String())
	}
	return types.NewError(types.ErrDecodingFailure, "cannot decode network config: "+err.Error(), "")
}

// strictUnmarshal decodes data into v, refusing unknown fields: inside a
// link a misspelt key would otherwise be silently ignored.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Store) validateEtcd() error {
	if len(s.Endpoints) == 0 {
		return Invalid("store.endpoints", "[]", "the etcd store needs at least one endpoint")
	}
	for _, e := range s.Endpoints {
		if strings.TrimSpace(e) == "" {
			return Invalid("store.endpoints", e, "an endpoint may not be empty")
		}
		if !s.Insecure && PlaintextEndpoint(e, s.TLS != nil && (s.TLS.CA != "" || s.TLS.Cert != "")) {
			return Invalid("store.endpoints", e, "is plaintext: use https:// with store.tls, or set store.insecure to true")
		}
	}
	if !strings.HasPrefix(s.Prefix, "/") {
		return Invalid("store.prefix", s.Prefix, "must start with /")
	}
	if s.Timeout != "" {
		if d, err := time.ParseDuration(s.Timeout); err != nil || d <= 0 {
			return Invalid("store.timeout", s.Timeout, "want a positive duration such as \"5s\"")
		}
	}
	if !filepath.IsAbs(s.AgentSocket) {
		return Invalid("store.agentSocket", s.AgentSocket, "must be an absolute path")
	}
	if t := s.TLS; t != nil {
		for field, path := range map[string]string{"store.tls.ca": t.CA, "store.tls.cert": t.Cert, "store.tls.key": t.Key} {
			if path != "" && !filepath.IsAbs(path) {
				return Invalid(field, path, "must be an absolute path")
			}
		}
		if (t.Cert == "") != (t.Key == "") {
			return Invalid("store.tls", fmt.Sprintf("cert %q key %q", t.Cert, t.Key), "cert and key go together")
		}
	}
	return nil
}

package install

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServiceAccountDir is where the kubelet mounts a pod's service account
// token, the cluster's CA and the pod's namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// DaemonSetRef names the DaemonSet whose deletion, and only that, makes the
// uninstall container uninstall.
type DaemonSetRef struct {
	Namespace, Name string
}

// String is NAMESPACE/NAME, the form ParseDaemonSetRef reads.
func (r DaemonSetRef) String() string { return r.Namespace + "/" + r.Name }

// ParseDaemonSetRef reads NAMESPACE/NAME, or a bare NAME, which is then in
// defaultNamespace (the pod's own namespace, from the service account
// mount). Both parts must be DNS labels or subdomains: they go into a URL
// path.
func ParseDaemonSetRef(s, defaultNamespace string) (DaemonSetRef, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok {
		ns, name = defaultNamespace, s
	}
	if ns == "" {
		return DaemonSetRef{}, fmt.Errorf("daemonset %q: no namespace given, and none from %s/namespace", s, ServiceAccountDir)
	}
	for _, part := range []string{ns, name} {
		if !isDNSName(part) {
			return DaemonSetRef{}, fmt.Errorf("daemonset %q: %q is not a Kubernetes object name", s, part)
		}
	}
	return DaemonSetRef{Namespace: ns, Name: name}, nil
}

// isDNSName reports whether s is a lower-case DNS subdomain (RFC 1123), the
// form of namespace and DaemonSet names.
func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && c != '-' && c != '.' {
			return false
		}
		if !alnum && (i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// APIServer is the one in-cluster request the uninstall container makes: a
// GET of its DaemonSet, with the pod's service account token, over TLS
// checked against the cluster's CA. It is plain net/http on purpose:
// ratchetctl stays a small binary without a Kubernetes client library.
type APIServer struct {
	// URL is the API server's base URL, https://HOST:PORT.
	URL string
	// TokenFile holds the bearer token; it is read for each request,
	// since the kubelet rotates projected tokens.
	TokenFile string
	// Client carries the TLS configuration (the cluster's CA).
	Client *http.Client
}

// InClusterAPIServer is the API server as a pod sees it: the `kubernetes`
// Service at KUBERNETES_SERVICE_HOST and _PORT, the token and CA from
// saDir (ServiceAccountDir in a pod).
func InClusterAPIServer(saDir string) (*APIServer, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("not in a pod: KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT not set")
	}
	caFile := filepath.Join(saDir, "ca.crt")
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	return &APIServer{
		URL:       "https://" + net.JoinHostPort(host, port),
		TokenFile: filepath.Join(saDir, "token"),
		Client: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			Proxy:           nil, // in-cluster: straight to the Service
		}},
	}, nil
}

// DaemonSetState is what the API server said about the DaemonSet.
type DaemonSetState int

const (
	// DaemonSetUnknown: no answer that says either way (the API server
	// unreachable, a timeout, 401, 403, 5xx, a body that is not a
	// DaemonSet).
	DaemonSetUnknown DaemonSetState = iota
	// DaemonSetPresent: it exists and is not being deleted (a rollout, a
	// drain or a pod restart is what stops this pod).
	DaemonSetPresent
	// DaemonSetDeleted: 404, or it has a deletionTimestamp (foreground
	// deletion waits for its pods).
	DaemonSetDeleted
)

// String names the state for the log.
func (s DaemonSetState) String() string {
	switch s {
	case DaemonSetPresent:
		return "present"
	case DaemonSetDeleted:
		return "deleted"
	default:
		return "unknown"
	}
}

// daemonSetMeta is the part of a DaemonSet that the decision reads.
type daemonSetMeta struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name              string  `json:"name"`
		Namespace         string  `json:"namespace"`
		DeletionTimestamp *string `json:"deletionTimestamp"`
	} `json:"metadata"`
}

// DaemonSet asks the API server whether ref exists and is not being
// deleted. The error explains DaemonSetUnknown.
func (a *APIServer) DaemonSet(ctx context.Context, ref DaemonSetRef) (DaemonSetState, error) {
	token, err := os.ReadFile(a.TokenFile)
	if err != nil {
		return DaemonSetUnknown, err
	}
	u := a.URL + "/apis/apps/v1/namespaces/" + url.PathEscape(ref.Namespace) + "/daemonsets/" + url.PathEscape(ref.Name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return DaemonSetUnknown, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Accept", "application/json")
	resp, err := a.Client.Do(req)
	if err != nil {
		return DaemonSetUnknown, err
	}
	defer resp.Body.Close()
	// A DaemonSet is a few KiB; the cap bounds a misbehaving server.
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return DaemonSetUnknown, fmt.Errorf("GET %s: %w", u, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return DaemonSetDeleted, nil
	default:
		return DaemonSetUnknown, fmt.Errorf("GET %s: %s: %s", u, resp.Status, firstLine(body))
	}
	var ds daemonSetMeta
	if err := json.Unmarshal(body, &ds); err != nil {
		return DaemonSetUnknown, fmt.Errorf("GET %s: not a DaemonSet: %w", u, err)
	}
	if ds.Kind != "DaemonSet" || ds.Metadata.Name != ref.Name || ds.Metadata.Namespace != ref.Namespace {
		return DaemonSetUnknown, fmt.Errorf("GET %s: got %s %s/%s, not DaemonSet %s", u, ds.Kind, ds.Metadata.Namespace, ds.Metadata.Name, ref)
	}
	if ds.Metadata.DeletionTimestamp != nil {
		return DaemonSetDeleted, nil
	}
	return DaemonSetPresent, nil
}

// firstLine is the start of an error body, for a one-line log.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// ShouldUninstall decides, on the pod's SIGTERM, whether to give the node
// its CNI config back: only when the owning DaemonSet is deleted. When it
// is present (a rollout, a drain, a pod restart) ratchet stays installed,
// so that no pod ADD or DEL on the node misses it while the pod is
// replaced.
//
// When the answer is unknown it keeps ratchet installed too. Of the two
// wrong outcomes, that one breaks nothing: the config entry and the plugin
// binary stay together, so pods keep getting their links, and a by-hand
// `ratchetctl install --uninstall` removes them later. Uninstalling on a
// mere rollout would leave pods without links and leak the records of
// pods deleted in the gap. The reason is for the log.
func ShouldUninstall(ctx context.Context, api *APIServer, ref DaemonSetRef, timeout time.Duration) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	state, err := api.DaemonSet(ctx, ref)
	switch state {
	case DaemonSetDeleted:
		return true, fmt.Sprintf("DaemonSet %s is deleted: uninstalling", ref)
	case DaemonSetPresent:
		return false, fmt.Sprintf("DaemonSet %s still exists (a rollout, drain or restart): ratchet stays installed", ref)
	default:
		return false, fmt.Sprintf("cannot tell whether DaemonSet %s is deleted (%v): ratchet stays installed; if it is, run `ratchetctl install --uninstall` on this node", ref, err)
	}
}
